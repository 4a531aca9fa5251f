package dev.hourglass.client;

import com.google.protobuf.FieldMask;
import dev.hourglass.v1.BackfillJobRequest;
import dev.hourglass.v1.BackfillJobResponse;
import dev.hourglass.v1.ExplainJobRequest;
import dev.hourglass.v1.ExplainJobResponse;
import dev.hourglass.v1.GetJobRequest;
import dev.hourglass.v1.GetRunRequest;
import dev.hourglass.v1.Job;
import dev.hourglass.v1.JobRef;
import dev.hourglass.v1.JobServiceGrpc;
import dev.hourglass.v1.JobSpec;
import dev.hourglass.v1.ListJobsRequest;
import dev.hourglass.v1.ListJobsResponse;
import dev.hourglass.v1.ListRunsRequest;
import dev.hourglass.v1.ListRunsResponse;
import dev.hourglass.v1.PauseJobRequest;
import dev.hourglass.v1.PreviewScheduleRequest;
import dev.hourglass.v1.PreviewScheduleResponse;
import dev.hourglass.v1.Run;
import dev.hourglass.v1.SubmitJobRequest;
import dev.hourglass.v1.SubmitJobResponse;
import dev.hourglass.v1.Trigger;
import dev.hourglass.v1.TriggerJobRequest;
import dev.hourglass.v1.TriggerJobResponse;
import dev.hourglass.v1.UpdateJobRequest;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * A client of Hourglass's JobService for one namespace. Every call has a deadline (the
 * builder's timeout, retries included), is retried by grpc-java on UNAVAILABLE (see
 * {@link RetryConfig}), and fails with a {@link HourglassException}. Thread-safe; close it to
 * release the channel.
 *
 * <pre>{@code
 * try (HourglassClient client = HourglassClient.fromEnvironment().build()) {
 *   Job job = client.submit(JobSpec.newBuilder().setName("report").setExecutor("echo")
 *       .setTrigger(Triggers.cron("0 6 * * *", "Europe/London")).build()).getJob();
 * }
 * }</pre>
 */
public final class HourglassClient implements AutoCloseable {
  private final String target;
  private final ManagedChannel channel;
  private final JobServiceGrpc.JobServiceBlockingStub stub;
  private final String namespace;
  private final Duration timeout;

  private HourglassClient(Builder b) {
    this.target = b.target;
    ManagedChannelBuilder<?> channelBuilder = Grpc.newChannelBuilder(b.target, b.credentials());
    if (b.maxAttempts > 1) {
      channelBuilder.defaultServiceConfig(RetryConfig.serviceConfig(b.maxAttempts)).enableRetry();
    } else {
      channelBuilder.disableRetry();
    }
    this.channel = channelBuilder.build();
    JobServiceGrpc.JobServiceBlockingStub s = JobServiceGrpc.newBlockingStub(channel);
    this.stub = b.token.isEmpty() ? s : s.withCallCredentials(new BearerToken(b.token));
    this.namespace = b.namespace;
    this.timeout = b.timeout;
  }

  /** A builder for a coordinator at {@code target} ("host:port"), plaintext until TLS is set. */
  public static Builder builder(String target) {
    return new Builder(target);
  }

  /** A builder set as the Python SDK and CLI are, from {@code System.getenv()}. */
  public static Builder fromEnvironment() {
    return fromEnvironment(System.getenv());
  }

  /**
   * A builder from {@code HOURGLASS_COORDINATOR} (default 127.0.0.1:7070; of a comma-separated
   * list the first), {@code HOURGLASS_TOKEN}, and TLS as the Python SDK takes it: on when
   * {@code HOURGLASS_TLS_CA_FILE} (the CA to trust; else the system's) or a client certificate
   * ({@code HOURGLASS_TLS_CLIENT_CERT_FILE} and {@code _KEY_FILE}, both or neither) is given.
   *
   * @throws IllegalArgumentException for a client certificate without its key, or a key alone
   */
  public static Builder fromEnvironment(Map<String, String> env) {
    String target = env.getOrDefault("HOURGLASS_COORDINATOR", "").split(",", -1)[0].trim();
    Builder b = new Builder(target.isEmpty() ? "127.0.0.1:7070" : target);
    b.token(env.getOrDefault("HOURGLASS_TOKEN", ""));
    String ca = env.getOrDefault("HOURGLASS_TLS_CA_FILE", "");
    String cert = env.getOrDefault("HOURGLASS_TLS_CLIENT_CERT_FILE", "");
    String key = env.getOrDefault("HOURGLASS_TLS_CLIENT_KEY_FILE", "");
    if (cert.isEmpty() != key.isEmpty()) {
      throw new IllegalArgumentException(
          "a client certificate needs both HOURGLASS_TLS_CLIENT_CERT_FILE and HOURGLASS_TLS_CLIENT_KEY_FILE");
    }
    if (!ca.isEmpty()) {
      b.tls(new File(ca));
    }
    if (!cert.isEmpty()) {
      b.clientCertificate(new File(cert), new File(key));
    }
    return b;
  }

  /**
   * Stores the job and its first fire. A spec without an idempotency key gets a random one, so
   * a retry after a lost answer returns the job the first attempt created; with the same key
   * as an earlier submit, returns that job ({@code created} false).
   */
  public SubmitJobResponse submit(JobSpec spec) {
    JobSpec sent = spec.toBuilder()
        .setNamespace(spec.getNamespace().isEmpty() ? namespace : spec.getNamespace())
        .setIdempotencyKey(spec.getIdempotencyKey().isEmpty() ? UUID.randomUUID().toString() : spec.getIdempotencyKey())
        .build();
    return call(() -> stub().submitJob(SubmitJobRequest.newBuilder().setJob(sent).build()));
  }

  public Job getJob(String id) {
    return call(() -> stub().getJob(GetJobRequest.newBuilder().setNamespace(namespace).setId(id).build()));
  }

  /** A page of the namespace's jobs; filters, page size and token as the request gives them. */
  public ListJobsResponse listJobs(ListJobsRequest request) {
    return call(() -> stub().listJobs(request.toBuilder().setNamespace(namespace).build()));
  }

  /** The first page of a job's runs, newest first. */
  public ListRunsResponse listRuns(String jobId) {
    return call(() -> stub().listRuns(ListRunsRequest.newBuilder().setNamespace(namespace).setJobId(jobId).build()));
  }

  public Run getRun(String runId) {
    return call(() -> stub().getRun(GetRunRequest.newBuilder().setRunId(runId).build()));
  }

  /** Stops future fires until {@link #resume}; {@code note} (may be empty) says why. */
  public Job pause(String id, String note) {
    return call(() -> stub().pauseJob(
        PauseJobRequest.newBuilder().setNamespace(namespace).setId(id).setNote(note).build()));
  }

  public Job resume(String id) {
    return call(() -> stub().resumeJob(ref(id)));
  }

  /** Stops all future fires; final. */
  public Job cancel(String id) {
    return call(() -> stub().cancelJob(ref(id)));
  }

  /** Removes a cancelled or completed job (an active or paused one: FAILED_PRECONDITION). */
  public void delete(String id) {
    call(() -> stub().deleteJob(ref(id)));
  }

  /**
   * Changes the named fields of the job ("name", "trigger", "priority", "params", "options",
   * "labels"; none: all six) to those of {@code changes}, if {@code version} is the job's current
   * one (else FAILED_PRECONDITION). Returns the job as stored.
   */
  public Job update(String id, long version, JobSpec changes, String... fields) {
    UpdateJobRequest request = UpdateJobRequest.newBuilder()
        .setNamespace(namespace).setId(id).setVersion(version).setJob(changes)
        .setUpdateMask(FieldMask.newBuilder().addAllPaths(Arrays.asList(fields)))
        .build();
    return call(() -> stub().updateJob(request));
  }

  /** Runs the job once now, beside its schedule; returns the run's id and due time. */
  public TriggerJobResponse trigger(String id) {
    return call(() -> stub().triggerJob(TriggerJobRequest.newBuilder().setNamespace(namespace).setId(id).build()));
  }

  /** Runs the fires the trigger would have made in [since, until), at the server's rate. */
  public BackfillJobResponse backfill(String id, Instant since, Instant until) {
    BackfillJobRequest request = BackfillJobRequest.newBuilder().setNamespace(namespace).setId(id)
        .setSince(Triggers.timestamp(since)).setUntil(Triggers.timestamp(until)).build();
    return call(() -> stub().backfillJob(request));
  }

  /** The next {@code count} fire times of a stored job. */
  public PreviewScheduleResponse preview(String id, int count) {
    return preview(PreviewScheduleRequest.newBuilder().setJob(ref(id)).setCount(count).build());
  }

  /** The next {@code count} fire times of a trigger not yet submitted. */
  public PreviewScheduleResponse preview(Trigger trigger, int count) {
    return preview(PreviewScheduleRequest.newBuilder().setTrigger(trigger).setCount(count).build());
  }

  private PreviewScheduleResponse preview(PreviewScheduleRequest request) {
    return call(() -> stub().previewSchedule(request));
  }

  /** What became of every fire the job's trigger expected in [since, until). */
  public ExplainJobResponse explain(String id, Instant since, Instant until) {
    ExplainJobRequest request = ExplainJobRequest.newBuilder().setNamespace(namespace).setId(id)
        .setSince(Triggers.timestamp(since)).setUntil(Triggers.timestamp(until)).build();
    return call(() -> stub().explainJob(request));
  }

  /**
   * The generated stub with this client's token and a fresh deadline, for the calls this class
   * does not wrap (WatchRuns, SubmitJobs, the namespace policy, the cluster views). It throws
   * StatusRuntimeException; {@link HourglassException#from} reads it.
   */
  public JobServiceGrpc.JobServiceBlockingStub stub() {
    return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  private JobRef ref(String id) {
    return JobRef.newBuilder().setNamespace(namespace).setId(id).build();
  }

  private <T> T call(Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (StatusRuntimeException e) {
      throw HourglassException.from(e, target);
    }
  }

  @Override
  public void close() {
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  /** Where and how to connect. */
  public static final class Builder {
    private final String target;
    private String namespace = "";
    private String token = "";
    private boolean tls;
    private File ca;
    private File clientCert;
    private File clientKey;
    private Duration timeout = Duration.ofSeconds(30);
    private int maxAttempts = 5;

    private Builder(String target) {
      this.target = target;
    }

    /** The namespace of every call (default: the server's "default"). */
    public Builder namespace(String namespace) {
      this.namespace = namespace;
      return this;
    }

    /** A bearer token sent with every call; "" sends none. */
    public Builder token(String token) {
      this.token = token;
      return this;
    }

    /** TLS, trusting the system's certificate authorities. */
    public Builder tls() {
      this.tls = true;
      return this;
    }

    /** TLS, trusting the certificate authorities of {@code ca} (PEM). */
    public Builder tls(File ca) {
      this.tls = true;
      this.ca = ca;
      return this;
    }

    /** TLS with a client certificate and its PKCS#8 key (PEM files), for mutual TLS. */
    public Builder clientCertificate(File cert, File key) {
      this.tls = true;
      this.clientCert = cert;
      this.clientKey = key;
      return this;
    }

    /** Each call's deadline, its retries included (default 30 s). */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** Attempts per call, the first included (default 5, grpc-java's cap; 1: no retries). */
    public Builder maxAttempts(int maxAttempts) {
      this.maxAttempts = maxAttempts;
      return this;
    }

    public HourglassClient build() {
      return new HourglassClient(this);
    }

    private ChannelCredentials credentials() {
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      TlsChannelCredentials.Builder credentials = TlsChannelCredentials.newBuilder();
      try {
        if (ca != null) {
          credentials.trustManager(ca);
        }
        if (clientCert != null) {
          credentials.keyManager(clientCert, clientKey);
        }
      } catch (IOException e) {
        throw new UncheckedIOException("reading the TLS files", e);
      }
      return credentials.build();
    }
  }
}
