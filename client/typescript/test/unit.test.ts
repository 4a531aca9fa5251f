// The client's pure parts (rich error details, retry arithmetic, options from the environment),
// and its retries against an address nobody answers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metadata, type ServiceError, status as Code } from "@grpc/grpc-js";
import { errorFromServiceError, errorFromStatus, HourglassError, readRichDetails } from "../src/errors";
import { Any } from "../src/gen/google/protobuf/any";
import { BadRequest, RetryInfo } from "../src/gen/google/rpc/error_details";
import { Status } from "../src/gen/google/rpc/status";
import { channelTarget, optionsFromEnv, resolveOptions } from "../src/options";
import { DEFAULT_RETRY, IDEMPOTENT_WRITE, NO_RETRY, retryDelayMs } from "../src/retry";
import { HourglassClient } from "../src/client";
import { duration, every } from "../src/triggers";

function statusBytes(...details: Any[]): Buffer {
  return Buffer.from(Status.encode({ code: Code.INVALID_ARGUMENT, message: "m", details }).finish());
}

const badRequest = (field: string): Any => ({
  typeUrl: "type.googleapis.com/google.rpc.BadRequest",
  value: Buffer.from(
    BadRequest.encode({
      fieldViolations: [{ field, description: "bad", reason: "", localizedMessage: undefined }],
    }).finish(),
  ),
});

const retryInfo = (ms: number): Any => ({
  typeUrl: "type.googleapis.com/google.rpc.RetryInfo",
  value: Buffer.from(RetryInfo.encode({ retryDelay: duration(ms) }).finish()),
});

function serviceError(code: Code, details: string, trailer?: Buffer): ServiceError {
  const metadata = new Metadata();
  if (trailer !== undefined) {
    metadata.set("grpc-status-details-bin", trailer);
  }
  return Object.assign(new Error(details), { code, details, metadata });
}

describe("rich error details", () => {
  it("take the field of the BadRequest's first violation and RetryInfo's delay", () => {
    const rich = readRichDetails(
      statusBytes(badRequest("trigger.cron.expression"), badRequest("name"), retryInfo(250)),
    );
    assert.deepEqual(rich, { field: "trigger.cron.expression", retryAfterMs: 250 });
  });

  it("give nothing for missing or undecodable bytes", () => {
    assert.deepEqual(readRichDetails(undefined), { field: "", retryAfterMs: undefined });
    assert.deepEqual(readRichDetails(Buffer.from([0xff, 0xff, 0xff])), { field: "", retryAfterMs: undefined });
  });

  it("reach the HourglassError of a failed call through the trailer", () => {
    const trailer = statusBytes(badRequest("jobs[1].name"));
    const error = errorFromServiceError(serviceError(Code.INVALID_ARGUMENT, "jobs[1].name: required", trailer), 2);
    assert.equal(error.code, Code.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.equal(error.field, "jobs[1].name");
    assert.equal(error.attempts, 2);
    assert.equal(error.message, "INVALID_ARGUMENT: jobs[1].name: required");
  });

  it("fall back to the field a message names, for bad arguments and disallowed executors only", () => {
    const none = { field: "", retryAfterMs: undefined };
    assert.equal(
      errorFromStatus(Code.INVALID_ARGUMENT, "trigger.cron.timezone: unknown", none).field,
      "trigger.cron.timezone",
    );
    assert.equal(errorFromStatus(Code.PERMISSION_DENIED, "job.executor: not allowed", none).field, "job.executor");
    assert.equal(errorFromStatus(Code.PERMISSION_DENIED, "token: lacks default:write", none).field, "");
    assert.equal(errorFromStatus(Code.NOT_FOUND, "job x: not found", none).field, "");
    assert.equal(errorFromStatus(Code.INVALID_ARGUMENT, "no field named here", none).field, "");
  });
});

describe("retries", () => {
  const always = (): number => 1;

  it("back off exponentially up to the cap", () => {
    const delays = [1, 2, 3, 4].map((n) =>
      retryDelayMs(DEFAULT_RETRY, Code.UNAVAILABLE, IDEMPOTENT_WRITE, n, 0, undefined, always),
    );
    assert.deepEqual(delays, [100, 200, 400, 800]);
    const policy = { ...DEFAULT_RETRY, maxAttempts: 20 };
    assert.equal(retryDelayMs(policy, Code.UNAVAILABLE, IDEMPOTENT_WRITE, 10, 0, undefined, always), 3000);
  });

  it("wait at least what the coordinator asked", () => {
    assert.equal(retryDelayMs(DEFAULT_RETRY, Code.RESOURCE_EXHAUSTED, IDEMPOTENT_WRITE, 1, 0, 1500, always), 1500);
  });

  it("give up on other statuses, on the last attempt and past the time budget", () => {
    assert.equal(retryDelayMs(DEFAULT_RETRY, Code.INVALID_ARGUMENT, IDEMPOTENT_WRITE, 1, 0, undefined), undefined);
    assert.equal(retryDelayMs(DEFAULT_RETRY, Code.UNAVAILABLE, NO_RETRY, 1, 0, undefined), undefined);
    assert.equal(retryDelayMs(DEFAULT_RETRY, Code.UNAVAILABLE, IDEMPOTENT_WRITE, 5, 0, undefined), undefined);
    assert.equal(
      retryDelayMs(DEFAULT_RETRY, Code.UNAVAILABLE, IDEMPOTENT_WRITE, 1, 29_990, undefined, always),
      undefined,
    );
  });
});

describe("options", () => {
  it("come from the variables the CLI and the Python SDK read", () => {
    const env = {
      HOURGLASS_COORDINATOR: "10.0.0.1:7070, 10.0.0.2:7070",
      HOURGLASS_TOKEN: "t",
      HOURGLASS_TLS_CA_FILE: "ca.pem",
      HOURGLASS_TLS_CLIENT_CERT_FILE: "c.pem",
      HOURGLASS_TLS_CLIENT_KEY_FILE: "c.key",
    };
    const found = optionsFromEnv(env);
    assert.deepEqual(found, {
      address: "10.0.0.1:7070, 10.0.0.2:7070",
      token: "t",
      caFile: "ca.pem",
      certFile: "c.pem",
      keyFile: "c.key",
    });
    assert.deepEqual(optionsFromEnv({ HOURGLASS_TOKEN: "" }), {});
  });

  it("make one balanced target of several replicas' IP addresses", () => {
    assert.deepEqual(channelTarget("coord:7070"), { target: "coord:7070", replicas: 1 });
    assert.deepEqual(channelTarget("10.0.0.1:7070, 10.0.0.2:7070"), {
      target: "ipv4:10.0.0.1:7070,10.0.0.2:7070",
      replicas: 2,
    });
    assert.deepEqual(channelTarget("[::1]:7070,[::2]:7070"), { target: "ipv6:[::1]:7070,[::2]:7070", replicas: 2 });
    assert.deepEqual(channelTarget("a:7070,10.0.0.2:7070"), { target: "dns:///a:7070", replicas: 1 });
    assert.throws(() => channelTarget(" , "), /no coordinator address/);
  });

  it("refuse a certificate without its key and a deadline that is not positive", () => {
    assert.throws(() => resolveOptions({ certFile: "c.pem" }), /certFile and keyFile/);
    assert.throws(() => resolveOptions({ timeoutMs: 0 }), /timeoutMs/);
    assert.equal(resolveOptions({}).address, "127.0.0.1:7070");
  });
});

describe("a coordinator that cannot be reached", () => {
  it("is retried for a read, then fails UNAVAILABLE naming the attempts", async () => {
    const retry = { ...DEFAULT_RETRY, maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 20 };
    const client = new HourglassClient({ address: "127.0.0.1:1", retry, timeoutMs: 2000 });
    try {
      await assert.rejects(client.get("any"), (error: unknown) => {
        assert.ok(error instanceof HourglassError);
        assert.equal(error.code, Code.UNAVAILABLE);
        assert.equal(error.attempts, 3);
        return true;
      });
      await assert.rejects(
        client.submit({ name: "n", executor: "echo", trigger: every(1000) }, { idempotent: false }),
        (error: unknown) => {
          assert.ok(error instanceof HourglassError);
          assert.equal(error.attempts, 1); // no key: a lost answer may mean the job exists
          return true;
        },
      );
    } finally {
      client.close();
    }
  });
});
