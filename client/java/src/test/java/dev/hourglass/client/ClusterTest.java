package dev.hourglass.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.hourglass.v1.BackfillJobResponse;
import dev.hourglass.v1.ExplainJobResponse;
import dev.hourglass.v1.Job;
import dev.hourglass.v1.JobSpec;
import dev.hourglass.v1.JobState;
import dev.hourglass.v1.ListJobsRequest;
import dev.hourglass.v1.PreviewScheduleResponse;
import dev.hourglass.v1.Run;
import dev.hourglass.v1.RunStatus;
import dev.hourglass.v1.SubmitJobResponse;
import dev.hourglass.v1.TriggerJobResponse;
import dev.hourglass.v1.Trigger;
import io.grpc.Status;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.UUID;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every wrapped call against a real coordinator and worker (Cassandra, Redis, mutual TLS,
 * tokens), as tests/e2e/test_client_java.py starts them: it passes $HOURGLASS_COORDINATOR,
 * $HOURGLASS_TOKEN and $HOURGLASS_TLS_* and a worker offering the `echo` executor.
 */
class ClusterTest {
  private static HourglassClient client;

  @BeforeAll
  static void connect() {
    if (System.getenv("HOURGLASS_COORDINATOR") == null) {
      fail("needs a coordinator: set HOURGLASS_COORDINATOR (and HOURGLASS_TOKEN, HOURGLASS_TLS_*), "
          + "or run tests/e2e/test_client_java.py, which starts one");
    }
    client = HourglassClient.fromEnvironment().build();
  }

  @AfterAll
  static void close() {
    if (client != null) {
      client.close();
    }
  }

  private static JobSpec.Builder spec(String name, Trigger trigger) {
    return JobSpec.newBuilder().setName(name).setExecutor("echo").setTrigger(trigger);
  }

  private static Trigger hourly() {
    return Triggers.every(Duration.ofHours(1));
  }

  @Test
  void aSecondSubmitWithTheSameIdempotencyKeyReturnsTheFirstJob() {
    String key = UUID.randomUUID().toString();
    SubmitJobResponse first = client.submit(spec("java-idem", hourly()).setIdempotencyKey(key).build());
    SubmitJobResponse again = client.submit(spec("java-idem", hourly()).setIdempotencyKey(key).build());
    assertTrue(first.getCreated());
    assertFalse(again.getCreated());
    assertEquals(first.getJob().getId(), again.getJob().getId());
  }

  @Test
  void getAndListFindASubmittedJob() {
    String name = "java-list-" + UUID.randomUUID();
    Job job = client.submit(spec(name, hourly()).putLabels("lang", "java").build()).getJob();
    Job read = client.getJob(job.getId());
    assertEquals(name, read.getSpec().getName());
    assertEquals(JobState.JOB_STATE_ACTIVE, read.getState());
    List<String> listed = client.listJobs(ListJobsRequest.newBuilder().setNamePrefix(name).build())
        .getJobsList().stream().map(Job::getId).collect(Collectors.toList());
    assertEquals(List.of(job.getId()), listed);
  }

  @Test
  void aJobDueInASecondRunsAndItsRunIsListed() throws InterruptedException {
    Instant due = Instant.now().plusSeconds(1).truncatedTo(ChronoUnit.MICROS); // as stored
    Job job = client.submit(spec("java-once", Triggers.once(due)).build()).getJob();
    Run run = awaitFinishedRun(job.getId(), Duration.ofSeconds(30));
    assertEquals(RunStatus.RUN_STATUS_SUCCEEDED, run.getStatus(), run.toString());
    assertEquals(due, Triggers.instant(run.getDue()));
    assertEquals(run, client.getRun(run.getRunId()));
  }

  private static Run awaitFinishedRun(String jobId, Duration within) throws InterruptedException {
    Instant deadline = Instant.now().plus(within);
    while (Instant.now().isBefore(deadline)) {
      List<Run> runs = client.listRuns(jobId).getRunsList();
      if (!runs.isEmpty() && runs.get(0).getStatus() != RunStatus.RUN_STATUS_RUNNING) {
        return runs.get(0);
      }
      Thread.sleep(200);
    }
    return fail("no finished run of " + jobId + " within " + within);
  }

  @Test
  void pauseResumeCancelAndDelete() {
    Job job = client.submit(spec("java-control", hourly()).build()).getJob();
    Job paused = client.pause(job.getId(), "maintenance");
    assertEquals(JobState.JOB_STATE_PAUSED, paused.getState());
    assertEquals("maintenance", paused.getNote());
    assertEquals(JobState.JOB_STATE_ACTIVE, client.resume(job.getId()).getState());
    assertEquals(JobState.JOB_STATE_CANCELLED, client.cancel(job.getId()).getState());
    HourglassException error = assertThrows(HourglassException.class, () -> client.resume(job.getId()));
    assertEquals(Status.Code.FAILED_PRECONDITION, error.code());
    client.delete(job.getId());
    assertEquals(Status.Code.NOT_FOUND, assertThrows(HourglassException.class, () -> client.getJob(job.getId())).code());
  }

  @Test
  void updateTriggerBackfillPreviewAndExplain() {
    Instant start = Instant.now().minus(Duration.ofHours(1)).truncatedTo(ChronoUnit.SECONDS);
    Trigger every10m = Triggers.every(Duration.ofMinutes(10)).toBuilder().setStart(Triggers.timestamp(start)).build();
    Job job = client.submit(spec("java-schedule", every10m).build()).getJob();

    Job renamed = client.update(job.getId(), job.getVersion(), JobSpec.newBuilder().setName("java-renamed").build(), "name");
    assertEquals("java-renamed", renamed.getSpec().getName());
    assertEquals(job.getVersion() + 1, renamed.getVersion());
    HourglassException stale = assertThrows(HourglassException.class,
        () -> client.update(job.getId(), job.getVersion(), JobSpec.newBuilder().setName("again").build(), "name"));
    assertEquals(Status.Code.FAILED_PRECONDITION, stale.code());

    TriggerJobResponse manual = client.trigger(job.getId());
    assertFalse(manual.getRunId().isEmpty());

    BackfillJobResponse backfill = client.backfill(job.getId(), start, start.plus(Duration.ofMinutes(30)));
    assertEquals(List.of(start, start.plus(Duration.ofMinutes(10)), start.plus(Duration.ofMinutes(20))),
        backfill.getOccurrencesList().stream().map(Triggers::instant).collect(Collectors.toList()));

    PreviewScheduleResponse stored = client.preview(job.getId(), 3);
    assertEquals(3, stored.getFiresCount());
    assertEquals(Duration.ofMinutes(10), Duration.between(
        Triggers.instant(stored.getFires(0).getAt()), Triggers.instant(stored.getFires(1).getAt())));
    PreviewScheduleResponse cron = client.preview(Triggers.cron("30 2 * * *", "America/New_York"), 2);
    assertEquals("America/New_York", cron.getTimezone());
    assertTrue(cron.getFires(0).getLocalTime().contains("T02:30:00-0"), cron.toString());

    ExplainJobResponse explained = client.explain(job.getId(), start, Instant.now());
    // The events, not the fires: under load the manual run may not have started yet.
    List<String> events = explained.getEventsList().stream()
        .map(e -> e.getKind() + " " + e.getDetail()).collect(Collectors.toList());
    assertEquals(3, events.size(), events.toString());
    assertEquals("updated name", events.get(0));
    assertEquals("triggered " + manual.getRunId(), events.get(1));
    assertTrue(events.get(2).startsWith("backfilled 3 fires"), events.toString());
  }

  @Test
  void anInvalidRequestNamesTheFieldAndAnUnknownJobIsNotFound() {
    HourglassException bad = assertThrows(HourglassException.class,
        () -> client.preview(Triggers.cron("0 * * * *", "Mars/Olympus"), 3));
    assertEquals(Status.Code.INVALID_ARGUMENT, bad.code());
    assertEquals("trigger.cron.timezone", bad.field());
    HourglassException badSubmit = assertThrows(HourglassException.class,
        () -> client.submit(spec("java-bad", Triggers.cron("61 * * * *", "UTC")).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, badSubmit.code());
    assertEquals("job.trigger.cron.expression", badSubmit.field());
    HourglassException missing = assertThrows(HourglassException.class, () -> client.getJob("no-such-job"));
    assertEquals(Status.Code.NOT_FOUND, missing.code());
  }

  @Test
  void aCallWithoutATokenIsUnauthenticated() {
    try (HourglassClient anonymous = HourglassClient.fromEnvironment().token("").build()) {
      HourglassException error = assertThrows(HourglassException.class,
          () -> anonymous.listJobs(ListJobsRequest.getDefaultInstance()));
      assertEquals(Status.Code.UNAUTHENTICATED, error.code());
    }
  }
}
