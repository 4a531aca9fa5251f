package dev.hourglass.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.io.UncheckedIOException;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What {@link HourglassClient#fromEnvironment(Map)} makes of the variables, without a server. */
class EnvironmentTest {
  @Test
  void withoutTlsVariablesItIsPlaintextToTheFirstCoordinatorListed() {
    // Building the channel also checks the retries' service config.
    try (HourglassClient client = HourglassClient.fromEnvironment(
        Map.of("HOURGLASS_COORDINATOR", "127.0.0.1:1, 127.0.0.1:2")).maxAttempts(3).build()) {
      HourglassException error = assertThrows(HourglassException.class, () -> client.getJob("x"));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertTrue(error.getMessage().endsWith("(coordinator 127.0.0.1:1)"), error.getMessage());
    }
  }

  @Test
  void aClientCertificateWithoutItsKeyIsRefusedNamingBothVariables() {
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> HourglassClient.fromEnvironment(Map.of("HOURGLASS_TLS_CLIENT_CERT_FILE", "client.pem")));
    assertTrue(error.getMessage().contains("HOURGLASS_TLS_CLIENT_KEY_FILE"), error.getMessage());
  }

  @Test
  void aMissingCaFileFailsTheBuild() {
    HourglassClient.Builder builder = HourglassClient.fromEnvironment(Map.of("HOURGLASS_TLS_CA_FILE", "/no/such/ca.pem"));
    assertThrows(UncheckedIOException.class, builder::build);
  }
}
