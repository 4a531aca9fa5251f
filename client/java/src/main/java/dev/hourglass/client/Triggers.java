package dev.hourglass.client;

import com.google.protobuf.Timestamp;
import dev.hourglass.v1.CronTrigger;
import dev.hourglass.v1.IntervalTrigger;
import dev.hourglass.v1.OnceTrigger;
import dev.hourglass.v1.Trigger;
import java.time.Duration;
import java.time.Instant;

/** Triggers and the protobuf times they are made of, from java.time values. */
public final class Triggers {
  private Triggers() {}

  /** Fires once, at {@code at}. */
  public static Trigger once(Instant at) {
    return Trigger.newBuilder().setOnce(OnceTrigger.newBuilder().setAt(timestamp(at))).build();
  }

  /** Fires every {@code every}, anchored at the submit time (set a start to anchor elsewhere). */
  public static Trigger every(Duration every) {
    return Trigger.newBuilder().setInterval(IntervalTrigger.newBuilder().setEvery(duration(every))).build();
  }

  /** Fires on a cron expression (5 fields, or 6 with seconds first) in an IANA time zone. */
  public static Trigger cron(String expression, String timezone) {
    return Trigger.newBuilder()
        .setCron(CronTrigger.newBuilder().setExpression(expression).setTimezone(timezone))
        .build();
  }

  public static Timestamp timestamp(Instant at) {
    return Timestamp.newBuilder().setSeconds(at.getEpochSecond()).setNanos(at.getNano()).build();
  }

  public static Instant instant(Timestamp at) {
    return Instant.ofEpochSecond(at.getSeconds(), at.getNanos());
  }

  public static Duration duration(com.google.protobuf.Duration d) {
    return Duration.ofSeconds(d.getSeconds(), d.getNanos());
  }

  public static com.google.protobuf.Duration duration(Duration d) {
    return com.google.protobuf.Duration.newBuilder().setSeconds(d.getSeconds()).setNanos(d.getNano()).build();
  }
}
