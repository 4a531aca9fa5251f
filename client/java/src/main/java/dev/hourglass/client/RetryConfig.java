package dev.hourglass.client;

import java.util.List;
import java.util.Map;

/**
 * The channel's service config: grpc-java's own retries (exponential backoff with jitter),
 * per method as safe. UNAVAILABLE means the coordinator or its backend could not take the
 * call, RESOURCE_EXHAUSTED that it refused it unread at its limit of calls at once. Every
 * write is safe to repeat (the client gives each submit an idempotency key; pause, resume,
 * cancel, update and backfill are idempotent) except TriggerJob, retried only when refused
 * unread.
 */
final class RetryConfig {
  private static final String SERVICE = "hourglass.v1.JobService";

  private RetryConfig() {}

  /** The service config map grpc-java takes ({@code defaultServiceConfig}); numbers as Double. */
  static Map<String, ?> serviceConfig(int maxAttempts) {
    return Map.of("methodConfig", List.of(
        Map.of("name", List.of(Map.of("service", SERVICE)),
            "retryPolicy", policy(maxAttempts, List.of("UNAVAILABLE", "RESOURCE_EXHAUSTED"))),
        Map.of("name", List.of(Map.of("service", SERVICE, "method", "TriggerJob")),
            "retryPolicy", policy(maxAttempts, List.of("RESOURCE_EXHAUSTED")))));
  }

  private static Map<String, ?> policy(int maxAttempts, List<String> codes) {
    return Map.of(
        "maxAttempts", (double) maxAttempts,
        "initialBackoff", "0.1s",
        "maxBackoff", "3s",
        "backoffMultiplier", 2.0,
        "retryableStatusCodes", codes);
  }
}
