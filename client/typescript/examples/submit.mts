// Submits a job due every minute (once: the idempotency key makes a rerun return the same job),
// then prints it and its latest runs. Run: npm run example (with $HOURGLASS_COORDINATOR,
// $HOURGLASS_TOKEN and $HOURGLASS_TLS_* set as for the CLI). README's "Clients" shows it.
import { HourglassClient, RunStatus, every, json } from "@hourglass/client";

const client = HourglassClient.fromEnv(); // $HOURGLASS_COORDINATOR, _TOKEN, _TLS_* files
const spec = { name: "report", executor: "echo", trigger: every(60_000), idempotencyKey: "report-v1" };
const { job, created } = await client.submit({ ...spec, params: json({ to: "ops" }) });
console.log(job.id, created ? "created" : "existed", "next fire", job.nextFireTime);
const { runs } = await client.runs(job.id, { pageSize: 5 });
console.log(runs.map((run) => `${run.due?.toISOString()} ${RunStatus[run.status]}`));
client.close();
