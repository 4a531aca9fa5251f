package dev.hourglass.example;

import dev.hourglass.client.HourglassClient;
import dev.hourglass.client.Triggers;
import dev.hourglass.v1.Job;
import dev.hourglass.v1.JobSpec;
import dev.hourglass.v1.Run;
import java.time.Duration;
import java.time.Instant;
import java.util.List;

/**
 * Submits a job due in two seconds and prints its run once it finished. Connects as the CLI
 * does ($HOURGLASS_COORDINATOR, $HOURGLASS_TOKEN, $HOURGLASS_TLS_*): {@code mvn -q compile
 * exec:java} in client/java.
 */
public final class Example {
  private Example() {}

  public static void main(String[] args) throws InterruptedException {
    try (HourglassClient client = HourglassClient.fromEnvironment().build()) {
      Job job = client.submit(JobSpec.newBuilder().setName("hello from java").setExecutor("echo")
          .setTrigger(Triggers.once(Instant.now().plus(Duration.ofSeconds(2)))).build()).getJob();
      System.out.println("submitted " + job.getId() + ", due " + Triggers.instant(job.getNextFireTime()));
      List<Run> runs = List.of();
      while (runs.isEmpty() || runs.get(0).getEndedAt().getSeconds() == 0) {
        Thread.sleep(500);
        runs = client.listRuns(job.getId()).getRunsList();
      }
      Run run = runs.get(0);
      System.out.println("run " + run.getStatus() + ", " + Triggers.duration(run.getLateness()).toMillis() + " ms late");
    }
  }
}
