// Submits a job due in a second to the coordinator at $HOURGLASS_COORDINATOR (default
// 127.0.0.1:7070, as `hourglass dev` listens), with $HOURGLASS_TOKEN and the TLS files of
// $HOURGLASS_TLS_*, and prints its run. Run from client/go: go run ./example
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
	"github.com/hourglass/hourglass/client/go/hourglass"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := hourglass.Dial(cmp.Or(os.Getenv("HOURGLASS_COORDINATOR"), "127.0.0.1:7070"), hourglass.FromEnv())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	job, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: "hello-go", Executor: "echo", Trigger: hourglass.Once(time.Now().Add(time.Second)),
	}})
	if err != nil {
		log.Fatal(err) // an *hourglass.Error: its Code, and the Field of a bad request
	}
	fmt.Println("submitted", job.GetJob().GetId())
	for {
		time.Sleep(500 * time.Millisecond)
		runs, err := c.ListRuns(ctx, &hourglassv1.ListRunsRequest{JobId: job.GetJob().GetId()})
		if err != nil {
			log.Fatal(err)
		}
		if r := runs.GetRuns(); len(r) > 0 && r[0].GetEndedAt() != nil {
			fmt.Println("run", r[0].GetStatus(), "on", r[0].GetWorkerId())
			return
		}
	}
}
