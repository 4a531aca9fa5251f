// Submits a job due in a second to the coordinator at $HOURGLASS_COORDINATOR (default
// 127.0.0.1:7070), with the token and TLS files of $HOURGLASS_TOKEN and $HOURGLASS_TLS_*,
// waits for its run and prints it. Run from client/go: go run ./example
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
	"github.com/hourglass/hourglass/client/go/hourglass"
)

func main() {
	address := os.Getenv("HOURGLASS_COORDINATOR")
	if address == "" {
		address = "127.0.0.1:7070"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := hourglass.Dial(address, hourglass.FromEnv())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	submitted, err := c.SubmitJob(ctx, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{
		Name: "hello-go", Executor: "echo", Trigger: hourglass.Once(time.Now().Add(time.Second)),
		Params: &hourglassv1.Payload{Data: []byte(`{"hello": "go"}`), ContentType: "application/json"},
	}})
	if err != nil {
		log.Fatal(err) // an *hourglass.Error: its Code, and its Field for a bad request
	}
	fmt.Println("submitted", submitted.GetJob().GetId())

	for ctx.Err() == nil {
		listed, err := c.ListRuns(ctx, &hourglassv1.ListRunsRequest{JobId: submitted.GetJob().GetId()})
		if err != nil {
			log.Fatal(err)
		}
		if runs := listed.GetRuns(); len(runs) > 0 && runs[0].GetEndedAt() != nil {
			fmt.Println("run", runs[0].GetStatus(), "result", string(runs[0].GetResult().GetData()))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Fatal("no run finished in time")
}
