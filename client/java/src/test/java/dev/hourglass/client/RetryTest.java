package dev.hourglass.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.hourglass.v1.GetJobRequest;
import dev.hourglass.v1.Job;
import dev.hourglass.v1.JobServiceGrpc;
import dev.hourglass.v1.TriggerJobRequest;
import dev.hourglass.v1.TriggerJobResponse;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Retries and the token header, against a local server that fails on purpose (no cluster). */
class RetryTest {
  private final AtomicInteger calls = new AtomicInteger();
  private final List<String> authorizations = new CopyOnWriteArrayList<>();
  private Server server;

  /** Answers UNAVAILABLE to the first two calls of each kind, then succeeds. */
  private final class Flaky extends JobServiceGrpc.JobServiceImplBase {
    @Override
    public void getJob(GetJobRequest request, StreamObserver<Job> out) {
      if (calls.incrementAndGet() <= 2) {
        out.onError(Status.UNAVAILABLE.withDescription("store down").asRuntimeException());
        return;
      }
      out.onNext(Job.newBuilder().setId(request.getId()).setNamespace(request.getNamespace()).build());
      out.onCompleted();
    }

    @Override
    public void triggerJob(TriggerJobRequest request, StreamObserver<TriggerJobResponse> out) {
      calls.incrementAndGet();
      out.onError(Status.UNAVAILABLE.withDescription("store down").asRuntimeException());
    }
  }

  private final ServerInterceptor recordToken = new ServerInterceptor() {
    @Override
    public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
        ServerCallHandler<Q, A> next) {
      authorizations.add(headers.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER)));
      return next.startCall(call, headers);
    }
  };

  @BeforeEach
  void start() throws IOException {
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new Flaky(), recordToken)).build().start();
  }

  @AfterEach
  void stop() {
    server.shutdownNow();
  }

  private HourglassClient client(int maxAttempts) {
    return HourglassClient.builder("127.0.0.1:" + server.getPort())
        .namespace("team").token("t0ken").maxAttempts(maxAttempts).build();
  }

  @Test
  void unavailableIsRetriedWithTheTokenOnEveryAttempt() {
    try (HourglassClient client = client(3)) {
      Job job = client.getJob("j1");
      assertEquals("j1", job.getId());
      assertEquals("team", job.getNamespace());
    }
    assertEquals(3, calls.get());
    assertEquals(List.of("Bearer t0ken", "Bearer t0ken", "Bearer t0ken"), authorizations);
  }

  @Test
  void attemptsRunOutAsUnavailableNamingTheCoordinator() {
    try (HourglassClient client = client(2)) {
      HourglassException error = assertThrows(HourglassException.class, () -> client.getJob("j1"));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("UNAVAILABLE: store down (coordinator 127.0.0.1:" + server.getPort() + ")", error.getMessage());
    }
    assertEquals(2, calls.get());
  }

  @Test
  void triggerIsNotRepeatedOnUnavailableLestItRunTwice() {
    try (HourglassClient client = client(5)) {
      assertThrows(HourglassException.class, () -> client.trigger("j1"));
    }
    assertEquals(1, calls.get());
  }
}
