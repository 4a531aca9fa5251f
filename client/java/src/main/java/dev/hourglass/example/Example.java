package dev.hourglass.example;

import dev.hourglass.client.HourglassClient;
import dev.hourglass.client.Triggers;
import dev.hourglass.v1.Job;
import dev.hourglass.v1.JobSpec;
import dev.hourglass.v1.Run;
import java.time.Instant;

/**
 * Submits a job due in two seconds and prints its run once it finished; the README's example.
 * Connects as the CLI does ($HOURGLASS_COORDINATOR, $HOURGLASS_TOKEN, $HOURGLASS_TLS_*):
 * {@code mvn -q compile exec:java} in client/java.
 */
public final class Example {
  private Example() {}

  public static void main(String[] args) throws InterruptedException {
    try (HourglassClient client = HourglassClient.fromEnvironment().build()) {  // $HOURGLASS_TOKEN, $HOURGLASS_TLS_*
      Job job = client.submit(JobSpec.newBuilder().setName("hello from java").setExecutor("echo")
          .setTrigger(Triggers.once(Instant.now().plusSeconds(2))).build()).getJob();
      System.out.println("submitted " + job.getId() + ", due " + Triggers.instant(job.getNextFireTime()));
      while (client.listRuns(job.getId()).getRunsCount() == 0 || client.getJob(job.getId()).getRunning()) {
        Thread.sleep(500);
      }
      Run run = client.listRuns(job.getId()).getRuns(0);
      System.out.println(run.getStatus() + ", " + Triggers.duration(run.getLateness()).toMillis() + " ms late");
    }
  }
}
