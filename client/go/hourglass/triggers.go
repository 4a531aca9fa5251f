package hourglass

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
)

// Once fires once, at at.
func Once(at time.Time) *hourglassv1.Trigger {
	return &hourglassv1.Trigger{Kind: &hourglassv1.Trigger_Once{Once: &hourglassv1.OnceTrigger{At: timestamppb.New(at)}}}
}

// Every fires every period, anchored at the submit time (set Trigger.Start to anchor it
// elsewhere).
func Every(period time.Duration) *hourglassv1.Trigger {
	return &hourglassv1.Trigger{Kind: &hourglassv1.Trigger_Interval{
		Interval: &hourglassv1.IntervalTrigger{Every: durationpb.New(period)},
	}}
}

// Cron fires on a 5-field (or 6, seconds first) cron expression in an IANA time zone ("" is UTC).
func Cron(expression, timezone string) *hourglassv1.Trigger {
	return &hourglassv1.Trigger{Kind: &hourglassv1.Trigger_Cron{
		Cron: &hourglassv1.CronTrigger{Expression: expression, Timezone: timezone},
	}}
}
