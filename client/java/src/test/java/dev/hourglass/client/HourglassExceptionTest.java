package dev.hourglass.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The error mapping, without a server. */
class HourglassExceptionTest {
  private static StatusRuntimeException failed(Code code, String message, Any... details) {
    com.google.rpc.Status.Builder rich = com.google.rpc.Status.newBuilder().setCode(code.getNumber()).setMessage(message);
    for (Any detail : details) {
      rich.addDetails(detail);
    }
    return StatusProto.toStatusRuntimeException(rich.build());
  }

  @Test
  void invalidArgumentCarriesTheFieldOfTheBadRequest() {
    BadRequest bad = BadRequest.newBuilder().addFieldViolations(BadRequest.FieldViolation.newBuilder()
        .setField("trigger.cron.timezone").setDescription("unknown time zone 'Mars/Olympus'")).build();
    HourglassException error = HourglassException.from(
        failed(Code.INVALID_ARGUMENT, "trigger.cron.timezone: unknown time zone 'Mars/Olympus'", Any.pack(bad)));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals("trigger.cron.timezone", error.field());
    assertEquals("INVALID_ARGUMENT: trigger.cron.timezone: unknown time zone 'Mars/Olympus'", error.getMessage());
  }

  @Test
  void unavailableCarriesTheRetryDelayAndNoField() {
    RetryInfo info = RetryInfo.newBuilder()
        .setRetryDelay(com.google.protobuf.Duration.newBuilder().setNanos(250_000_000)).build();
    HourglassException error = HourglassException.from(failed(Code.UNAVAILABLE, "store down", Any.pack(info)));
    assertEquals(Status.Code.UNAVAILABLE, error.code());
    assertEquals("", error.field());
    assertEquals(Duration.ofMillis(250), error.retryAfter().orElseThrow());
  }

  @Test
  void aStatusWithoutDetailsNamesNoField() {
    HourglassException error = HourglassException.from(Status.NOT_FOUND.withDescription("job x").asRuntimeException());
    assertEquals(Status.Code.NOT_FOUND, error.code());
    assertEquals("", error.field());
    assertTrue(error.retryAfter().isEmpty());
  }
}
