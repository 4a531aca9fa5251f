"""`hourglass ingest`: jobs from a Kafka topic, one job per message, through SubmitJob's
validation and store path (see README, Kafka). `decode` turns a message into a spec, `loop`
consumes, submits and commits, `results` publishes finished runs, `main` wires them up."""
