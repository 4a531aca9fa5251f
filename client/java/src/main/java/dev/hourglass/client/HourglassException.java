package dev.hourglass.client;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.Optional;

/**
 * A failed Hourglass call: its gRPC status code, the coordinator's message, and what the rich
 * error details (google.rpc.Status in {@code grpc-status-details-bin}) say — the field an
 * INVALID_ARGUMENT names ({@code "trigger.cron.timezone"}), and how long an UNAVAILABLE or
 * RESOURCE_EXHAUSTED asked the caller to wait.
 */
public final class HourglassException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Status.Code code;
  private final String field;
  private final transient Duration retryAfter;

  HourglassException(Status.Code code, String description, String field, Duration retryAfter, Throwable cause) {
    super(field.isEmpty() || description.startsWith(field + ": ")
        ? code + ": " + description
        : code + ": " + field + ": " + description, cause);
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** The exception for a failed call; reads the rich details the status carries, if any. */
  public static HourglassException from(StatusRuntimeException error) {
    return from(error, "");
  }

  /** As {@link #from(StatusRuntimeException)}; an UNAVAILABLE's message names {@code target}. */
  static HourglassException from(StatusRuntimeException error, String target) {
    Status status = error.getStatus();
    String description = status.getDescription() == null ? "" : status.getDescription();
    if (status.getCode() == Status.Code.UNAVAILABLE && !target.isEmpty()) {
      description += " (coordinator " + target + ")";
    }
    com.google.rpc.Status rich = StatusProto.fromThrowable(error);
    return new HourglassException(status.getCode(), description, fieldOf(rich), retryAfterOf(rich), error);
  }

  /** The first field violation's field of the details' BadRequest; "" when there is none. */
  static String fieldOf(com.google.rpc.Status rich) {
    if (rich == null) {
      return "";
    }
    for (com.google.protobuf.Any detail : rich.getDetailsList()) {
      if (detail.is(BadRequest.class)) {
        try {
          BadRequest bad = detail.unpack(BadRequest.class);
          if (bad.getFieldViolationsCount() > 0) {
            return bad.getFieldViolations(0).getField();
          }
        } catch (InvalidProtocolBufferException e) {
          return ""; // details that do not decode say nothing
        }
      }
    }
    return "";
  }

  /** The delay of the details' RetryInfo; null when there is none. */
  static Duration retryAfterOf(com.google.rpc.Status rich) {
    if (rich == null) {
      return null;
    }
    for (com.google.protobuf.Any detail : rich.getDetailsList()) {
      if (detail.is(RetryInfo.class)) {
        try {
          com.google.protobuf.Duration delay = detail.unpack(RetryInfo.class).getRetryDelay();
          return Duration.ofSeconds(delay.getSeconds(), delay.getNanos());
        } catch (InvalidProtocolBufferException e) {
          return null;
        }
      }
    }
    return null;
  }

  /** The gRPC status code (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED, ...). */
  public Status.Code code() {
    return code;
  }

  /** The request field an INVALID_ARGUMENT is about, e.g. "trigger.cron.timezone"; else "". */
  public String field() {
    return field;
  }

  /** How long the coordinator asked the caller to wait before trying again, if it did. */
  public Optional<Duration> retryAfter() {
    return Optional.ofNullable(retryAfter);
  }
}
