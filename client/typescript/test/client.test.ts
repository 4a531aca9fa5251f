// The client against a real coordinator and worker: tests/e2e/test_client_typescript.py starts a
// secured cluster (mutual TLS, bearer tokens, Cassandra, Redis) and runs this with its
// $HOURGLASS_COORDINATOR, $HOURGLASS_TOKEN and $HOURGLASS_TLS_* files.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  Code,
  cron,
  every,
  FireFate,
  HourglassClient,
  HourglassError,
  json,
  JobState,
  once,
  parseJson,
  type Run,
  RunStatus,
} from "../src";

const NEEDED = ["HOURGLASS_COORDINATOR", "HOURGLASS_TOKEN", "HOURGLASS_TLS_CA_FILE"];
const HOUR = 3600_000;

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) {
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function rejection(call: Promise<unknown>): Promise<HourglassError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof HourglassError, `not an HourglassError: ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

describe("HourglassClient on a real coordinator", () => {
  let client: HourglassClient;
  const prefix = `ts-${randomUUID().slice(0, 8)}-`;

  before(() => {
    const missing = NEEDED.filter((name) => !process.env[name]);
    assert.deepEqual(missing, [], "run through tests/e2e/test_client_typescript.py, which starts the cluster");
    client = HourglassClient.fromEnv({ timeoutMs: 15_000 });
  });

  after(() => client.close());

  it("submits once per idempotency key, then gets, lists and waits for the run", async () => {
    const spec = {
      name: `${prefix}soon`,
      executor: "echo",
      trigger: once(new Date(Date.now() + 1000)),
      params: json({ hello: "ts" }),
      labels: { lang: "ts" },
      idempotencyKey: `${prefix}key`,
    };
    const first = await client.submit(spec);
    const again = await client.submit(spec);
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.job.id, first.job.id);

    const job = await client.get(first.job.id);
    assert.equal(job.spec?.name, `${prefix}soon`);
    assert.equal(job.spec?.labels["lang"], "ts");
    assert.equal(job.namespace, "default");

    const page = await client.list({ namePrefix: prefix, labels: { lang: "ts" } });
    assert.deepEqual(
      page.jobs.map((j) => j.id),
      [job.id],
    );
    const all: string[] = [];
    for await (const listed of client.jobs({ namePrefix: prefix, pageSize: 1 })) {
      all.push(listed.id);
    }
    assert.deepEqual(all, [job.id]);

    const run = await eventually<Run>("the run to finish", async () => {
      const { runs } = await client.runs(job.id);
      return runs.find((r) => r.status !== RunStatus.RUN_STATUS_RUNNING);
    });
    assert.equal(run.status, RunStatus.RUN_STATUS_SUCCEEDED, run.error);
    assert.equal(run.workerId, "w1");
    assert.deepEqual(parseJson(run.result), { hello: "ts" });
    assert.ok(run.due !== undefined && run.startedAt !== undefined && run.startedAt >= run.due);
    assert.equal((await client.getRun(run.runId)).jobId, job.id);
    const done = await eventually("the job to complete", async () => {
      const found = await client.get(job.id);
      return found.state === JobState.JOB_STATE_COMPLETED ? found : undefined;
    });
    assert.equal(done.lastStatus, RunStatus.RUN_STATUS_SUCCEEDED);
  });

  it("pauses, resumes, updates, triggers, backfills, previews, explains and cancels", async () => {
    const started = new Date();
    const anchor = new Date(Math.floor(started.getTime() / HOUR) * HOUR - 5 * HOUR);
    const { job } = await client.submit({ name: `${prefix}hourly`, executor: "echo", trigger: every(HOUR, anchor) });
    assert.equal(job.state, JobState.JOB_STATE_ACTIVE);

    const paused = await client.pause(job.id, "maintenance");
    assert.equal(paused.state, JobState.JOB_STATE_PAUSED);
    assert.equal(paused.note, "maintenance");
    assert.equal(paused.nextFireTime, undefined);
    const resumed = await client.resume(job.id);
    assert.equal(resumed.state, JobState.JOB_STATE_ACTIVE);
    assert.equal(resumed.note, "");

    const renamed = await client.update(job.id, resumed.version, { name: `${prefix}renamed` }, ["name"]);
    assert.equal(renamed.spec?.name, `${prefix}renamed`);
    assert.equal(renamed.version, resumed.version + 1);
    const stale = await rejection(client.update(job.id, resumed.version, { name: "lost" }, ["name"]));
    assert.equal(stale.code, Code.FAILED_PRECONDITION);

    const preview = await client.preview({ jobId: job.id }, 3);
    assert.equal(preview.fires.length, 3);
    assert.equal(preview.fires[1]!.at!.getTime() - preview.fires[0]!.at!.getTime(), HOUR);
    const spring = await client.preview(
      { trigger: cron("30 2 * * *", "America/New_York") },
      3,
      new Date("2027-03-13T00:00:00Z"),
    );
    assert.equal(spring.timezone, "America/New_York");
    assert.deepEqual(
      spring.fires.map((f) => f.localTime),
      ["2027-03-13T02:30:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00"],
    );

    const triggered = await client.trigger(job.id);
    assert.ok(triggered.runId !== "" && triggered.due !== undefined);
    const manual = await eventually<Run>("the manual run to finish", async () => {
      try {
        const run = await client.getRun(triggered.runId);
        return run.status === RunStatus.RUN_STATUS_RUNNING ? undefined : run;
      } catch (error) {
        if (error instanceof HourglassError && error.code === Code.NOT_FOUND) return undefined;
        throw error;
      }
    });
    assert.equal(manual.manual, true);
    assert.equal(manual.status, RunStatus.RUN_STATUS_SUCCEEDED);

    const since = new Date(anchor.getTime() + 2 * HOUR);
    const until = new Date(anchor.getTime() + 4 * HOUR + 1);
    const backfill = await client.backfill(job.id, since, until, 10);
    assert.deepEqual(
      backfill.occurrences.map((d) => d.getTime()),
      [2, 3, 4].map((n) => anchor.getTime() + n * HOUR),
    );

    const explained = await client.explain(job.id, new Date(started.getTime() - 60_000));
    const kinds = explained.events.map((e) => e.kind);
    for (const kind of ["paused", "resumed", "updated", "triggered", "backfilled"]) {
      assert.ok(kinds.includes(kind), `no ${kind} event in ${kinds.join(", ")}`);
    }
    assert.ok(
      explained.fires.some((f) => f.runId === triggered.runId && f.fate === FireFate.FIRE_FATE_RAN && f.manual),
    );

    const cancelled = await client.cancel(job.id);
    assert.equal(cancelled.state, JobState.JOB_STATE_CANCELLED);
    const refused = await rejection(client.resume(job.id));
    assert.equal(refused.code, Code.FAILED_PRECONDITION);
    await client.delete(job.id);
    assert.equal((await rejection(client.get(job.id))).code, Code.NOT_FOUND);
  });

  it("streams the runs of a job as they finish", async () => {
    const { job } = await client.submit({
      name: `${prefix}watched`,
      executor: "echo",
      trigger: once(new Date(Date.now() + HOUR)),
    });
    const stop = new AbortController();
    const events = client.watchRuns({ jobId: job.id, signal: stop.signal });
    const first = events.next();
    // The watch starts "from now on": trigger until a run arrives, in case the first trigger
    // reached the coordinator before the stream did.
    const triggering = setInterval(() => void client.trigger(job.id).catch(() => undefined), 1000);
    await client.trigger(job.id);
    try {
      const event = await first;
      assert.equal(event.done, false);
      assert.equal(event.value?.run?.jobId, job.id);
      assert.equal(event.value?.run?.manual, true);
    } finally {
      clearInterval(triggering);
      stop.abort();
    }
    assert.deepEqual(await events.next(), { done: true, value: undefined });
    await client.cancel(job.id);
  });

  it("fails a bad request with INVALID_ARGUMENT naming the field", async () => {
    const bad = await rejection(client.submit({ name: `${prefix}bad`, executor: "echo", trigger: cron("61 * * * *") }));
    assert.equal(bad.code, Code.INVALID_ARGUMENT);
    assert.equal(bad.codeName, "INVALID_ARGUMENT");
    assert.equal(bad.field, "job.trigger.cron.expression"); // the path in SubmitJobRequest
    assert.equal(bad.attempts, 1);
    const tooMany = await rejection(client.preview({ trigger: every(60_000) }, 1001));
    assert.equal(tooMany.field, "count");
    assert.equal((await rejection(client.get("no-such-job"))).code, Code.NOT_FOUND);
  });

  it("goes round-robin to the replicas that answer when given several", async () => {
    const both = HourglassClient.fromEnv({ address: `127.0.0.1:1,${process.env["HOURGLASS_COORDINATOR"]}` });
    try {
      for (let i = 0; i < 4; i++) {
        assert.equal((await both.list({ namePrefix: prefix, pageSize: 1 })).jobs.length, 1);
      }
    } finally {
      both.close();
    }
  });

  it("is UNAUTHENTICATED without a token", async () => {
    const anonymous = HourglassClient.fromEnv({ token: "" });
    try {
      const error = await rejection(anonymous.list());
      assert.equal(error.code, Code.UNAUTHENTICATED);
    } finally {
      anonymous.close();
    }
  });
});
