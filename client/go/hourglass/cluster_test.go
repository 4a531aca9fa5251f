package hourglass_test

// These tests need a real coordinator, a worker offering "echo" and their Cassandra and Redis:
// tests/e2e/test_client_go.py starts them and runs `go test` with HOURGLASS_COORDINATOR,
// HOURGLASS_TOKEN and the TLS variables set (and fails if any test here was skipped).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
	"github.com/hourglass/hourglass/client/go/hourglass"
)

func dialCluster(t *testing.T, opts ...hourglass.Option) (*hourglass.Client, context.Context) {
	t.Helper()
	address := os.Getenv("HOURGLASS_COORDINATOR")
	if address == "" {
		t.Skip("HOURGLASS_COORDINATOR is not set: run through tests/e2e/test_client_go.py")
	}
	c, err := hourglass.Dial(address, append([]hourglass.Option{hourglass.FromEnv()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return c, ctx
}

func unique(name string) string {
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func asError(t *testing.T, err error) *hourglass.Error {
	t.Helper()
	var e *hourglass.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *hourglass.Error, got %T %v", err, err)
	}
	return e
}

func TestClusterSubmitWithAnIdempotencyKeyReturnsTheFirstJob(t *testing.T) {
	c, ctx := dialCluster(t)
	name := unique("go-nightly")
	spec := &hourglassv1.JobSpec{
		Name: name, Executor: "echo", Trigger: hourglass.Cron("30 2 * * *", "Europe/London"),
		IdempotencyKey: name, Labels: map[string]string{"client": "go"},
	}
	first, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: spec})
	ok(t, err)
	again, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: spec})
	ok(t, err)
	if !first.GetCreated() || again.GetCreated() || again.GetJob().GetId() != first.GetJob().GetId() {
		t.Fatalf("first %v, again %v", first, again)
	}
	job, err := c.GetJob(ctx, &hourglassv1.GetJobRequest{Id: first.GetJob().GetId()})
	ok(t, err)
	if job.GetSpec().GetName() != name || job.GetState() != hourglassv1.JobState_JOB_STATE_ACTIVE || job.GetNextFireTime() == nil {
		t.Fatalf("got %v", job)
	}
	listed, err := c.ListJobs(ctx, &hourglassv1.ListJobsRequest{NamePrefix: name, Labels: map[string]string{"client": "go"}})
	ok(t, err)
	if len(listed.GetJobs()) != 1 || listed.GetJobs()[0].GetId() != job.GetId() {
		t.Fatalf("listed %v", listed.GetJobs())
	}
}

func TestClusterAJobDueInASecondRunsAndItsRunIsListed(t *testing.T) {
	c, ctx := dialCluster(t)
	submitted, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: unique("go-soon"), Executor: "echo", Trigger: hourglass.Once(time.Now().Add(time.Second)),
	}})
	ok(t, err)
	job := submitted.GetJob()
	for {
		listed, err := c.ListRuns(ctx, &hourglassv1.ListRunsRequest{JobId: job.GetId()})
		ok(t, err)
		runs := listed.GetRuns()
		if len(runs) > 0 && runs[0].GetStatus() == hourglassv1.RunStatus_RUN_STATUS_SUCCEEDED {
			run, err := c.GetRun(ctx, &hourglassv1.GetRunRequest{RunId: runs[0].GetRunId()})
			ok(t, err)
			if run.GetJobId() != job.GetId() || run.GetStartedAt() == nil || run.GetWorkerId() == "" {
				t.Fatalf("run %v", run)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no run succeeded in time: %v", runs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestClusterPauseResumeAndCancel(t *testing.T) {
	c, ctx := dialCluster(t)
	submitted, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: unique("go-hourly"), Executor: "echo", Trigger: hourglass.Every(time.Hour),
	}})
	ok(t, err)
	id := submitted.GetJob().GetId()
	paused, err := c.PauseJob(ctx, &hourglassv1.PauseJobRequest{Id: id, Note: "maintenance"})
	ok(t, err)
	if paused.GetState() != hourglassv1.JobState_JOB_STATE_PAUSED || paused.GetNote() != "maintenance" {
		t.Fatalf("paused %v", paused)
	}
	resumed, err := c.ResumeJob(ctx, &hourglassv1.JobRef{Id: id})
	ok(t, err)
	if resumed.GetState() != hourglassv1.JobState_JOB_STATE_ACTIVE {
		t.Fatalf("resumed %v", resumed)
	}
	cancelled, err := c.CancelJob(ctx, &hourglassv1.JobRef{Id: id})
	ok(t, err)
	if cancelled.GetState() != hourglassv1.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancelled %v", cancelled)
	}
	_, err = c.ResumeJob(ctx, &hourglassv1.JobRef{Id: id})
	if e := asError(t, err); e.Code != codes.FailedPrecondition {
		t.Fatalf("resume after cancel: %v", e)
	}
}

func TestClusterScheduleControl(t *testing.T) {
	c, ctx := dialCluster(t)
	start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	trigger := hourglass.Every(time.Minute)
	trigger.Start = timestamppb.New(start)
	submitted, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: unique("go-minutely"), Executor: "echo", Trigger: trigger,
	}})
	ok(t, err)
	job := submitted.GetJob()

	updated, err := c.UpdateJob(ctx, &hourglassv1.UpdateJobRequest{
		Id: job.GetId(), Version: job.GetVersion(), Job: &hourglassv1.JobSpec{Name: "go-renamed"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}},
	})
	ok(t, err)
	if updated.GetSpec().GetName() != "go-renamed" || updated.GetVersion() != job.GetVersion()+1 {
		t.Fatalf("updated %v", updated)
	}

	previewed, err := c.PreviewSchedule(ctx, &hourglassv1.PreviewScheduleRequest{
		Target: &hourglassv1.PreviewScheduleRequest_Job{Job: &hourglassv1.JobRef{Id: job.GetId()}}, Count: 3,
	})
	ok(t, err)
	preview := previewed.GetFires()
	if len(preview) != 3 || preview[1].GetAt().AsTime().Sub(preview[0].GetAt().AsTime()) != time.Minute {
		t.Fatalf("preview %v", preview)
	}

	triggered, err := c.TriggerJob(ctx, &hourglassv1.TriggerJobRequest{Id: job.GetId()})
	ok(t, err)
	if triggered.GetRunId() == "" || triggered.GetDue() == nil {
		t.Fatalf("triggered %v", triggered)
	}

	backfill, err := c.BackfillJob(ctx, &hourglassv1.BackfillJobRequest{
		Id: job.GetId(), Since: timestamppb.New(start), Until: timestamppb.New(start.Add(3 * time.Minute)),
	})
	ok(t, err)
	var times []time.Time
	for _, at := range backfill.GetOccurrences() {
		times = append(times, at.AsTime())
	}
	if want := []time.Time{start, start.Add(time.Minute), start.Add(2 * time.Minute)}; !slices.EqualFunc(times, want, time.Time.Equal) {
		t.Fatalf("backfilled %v, want %v", times, want)
	}

	explained, err := c.ExplainJob(ctx, &hourglassv1.ExplainJobRequest{Id: job.GetId(), Since: timestamppb.New(start)})
	ok(t, err)
	// Its fires may not be due yet (the schedule's first one after the submit is up to a
	// minute away, the backfilled ones are released over a second): the events are there.
	var kinds []string
	for _, event := range explained.GetEvents() {
		kinds = append(kinds, event.GetKind())
		if event.GetKind() == "updated" && event.GetVersion() != updated.GetVersion() {
			t.Fatalf("update event at version %d, want %d", event.GetVersion(), updated.GetVersion())
		}
	}
	for _, kind := range []string{"updated", "triggered", "backfilled"} {
		if !slices.Contains(kinds, kind) {
			t.Fatalf("events %v lack %q", kinds, kind)
		}
	}
}

func TestClusterAnInvalidRequestNamesItsField(t *testing.T) {
	c, ctx := dialCluster(t)
	_, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: "go-bad-zone", Executor: "echo", Trigger: hourglass.Cron("0 3 * * *", "Mars/Olympus_Mons"),
	}})
	if e := asError(t, err); e.Code != codes.InvalidArgument || e.Field != "job.trigger.cron.timezone" {
		t.Fatalf("got code %v field %q (%v)", e.Code, e.Field, e)
	}
}

func TestClusterACallWithoutATokenIsUnauthenticated(t *testing.T) {
	c, ctx := dialCluster(t, hourglass.WithToken(""))
	_, err := c.ListJobs(ctx, &hourglassv1.ListJobsRequest{})
	if e := asError(t, err); e.Code != codes.Unauthenticated {
		t.Fatalf("got %v", e)
	}
}
