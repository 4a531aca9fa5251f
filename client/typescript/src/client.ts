// The typed client of Hourglass's JobService: one method per call, each retried where that is
// safe, each failing with an HourglassError.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status as Code,
} from "@grpc/grpc-js";
import { errorFromServiceError, HourglassError } from "./errors";
import {
  type BackfillJobResponse,
  type DeepPartial,
  type ExplainJobResponse,
  type Job,
  type JobSpec,
  JobServiceClient,
  type JobState,
  type ListJobsResponse,
  type ListRunsResponse,
  type OverlapPolicy,
  type PreviewScheduleResponse,
  type Run,
  type RunEvent,
  JobSpec as JobSpecMessage,
  type Trigger,
  type TriggerJobResponse,
} from "./gen/hourglass/v1/jobs";
import { channelTarget, type ClientOptions, optionsFromEnv, resolveOptions } from "./options";
import { IDEMPOTENT_WRITE, NO_RETRY, READ, REFUSED_UNREAD, type RetryPolicy, retryDelayMs } from "./retry";

/** A job spec as a submit takes it: name, executor and trigger, the rest optional. */
export type JobSpecInput = DeepPartial<JobSpec> & { name: string; executor: string; trigger: Trigger };

export interface Submitted {
  readonly job: Job;
  /** False when the idempotency key returned a job created earlier. */
  readonly created: boolean;
}

export interface JobFilter {
  readonly namespace?: string;
  readonly state?: JobState;
  readonly namePrefix?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** At most 1000; default 100. */
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface Page {
  readonly namespace?: string;
  readonly pageSize?: number;
  readonly pageToken?: string;
}

// The coordinator accepts up to 64 MiB; a page of jobs with large params exceeds gRPC's 4 MiB default.
const MAX_MESSAGE = 64 * 1024 * 1024;

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number" && "metadata" in error;
}

function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) {
    throw new HourglassError(Code.INTERNAL, `the coordinator's answer lacks ${what}`);
  }
  return value;
}

function channelCredentials(options: Pick<ClientOptions, "caFile" | "certFile" | "keyFile">): ChannelCredentials {
  if (options.caFile === undefined && options.certFile === undefined) {
    return credentials.createInsecure();
  }
  const read = (file: string | undefined): Buffer | null => (file === undefined ? null : readFileSync(file));
  return credentials.createSsl(read(options.caFile), read(options.keyFile), read(options.certFile));
}

/** A client of a coordinator (or of several replicas, round-robin). Calls return promises; a
 * failed call rejects with an HourglassError. Reads and idempotent writes are retried on
 * UNAVAILABLE with backoff; a submit is too, as it carries an idempotency key (one is made when
 * the spec has none). */
export class HourglassClient {
  readonly address: string;
  readonly namespace: string;
  private readonly stub: JobServiceClient;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  /** Connects lazily (the first call connects); throws if a TLS file cannot be read. */
  constructor(options: ClientOptions = {}) {
    const resolved = resolveOptions(options);
    this.address = resolved.address;
    this.namespace = resolved.namespace;
    this.token = resolved.token;
    this.timeoutMs = resolved.timeoutMs;
    this.retry = resolved.retry;
    const { target, replicas } = channelTarget(resolved.address);
    const channel: ChannelOptions = {
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
    };
    if (replicas > 1) {
      channel["grpc.service_config"] = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });
    }
    this.stub = new JobServiceClient(target, channelCredentials(resolved), channel);
  }

  /** A client configured by $HOURGLASS_COORDINATOR, $HOURGLASS_TOKEN and $HOURGLASS_TLS_CA_FILE,
   * _CLIENT_CERT_FILE, _CLIENT_KEY_FILE (as the CLI and the Python SDK are), then `overrides`. */
  static fromEnv(overrides: ClientOptions = {}, env: NodeJS.ProcessEnv = process.env): HourglassClient {
    return new HourglassClient({ ...optionsFromEnv(env), ...overrides });
  }

  close(): void {
    this.stub.close();
  }

  /** Stores a job and its first fire. With an idempotency key seen before in the namespace,
   * returns the job created then (`created` false). `idempotent: false` sends no generated key
   * (and then a submit is not retried: a lost answer could mean the job exists). */
  async submit(spec: JobSpecInput, options: { readonly idempotent?: boolean } = {}): Promise<Submitted> {
    const job = JobSpecMessage.fromPartial(spec);
    job.namespace ||= this.namespace;
    if (job.idempotencyKey === "" && options.idempotent !== false) {
      job.idempotencyKey = randomUUID();
    }
    const retryOn = job.idempotencyKey === "" ? NO_RETRY : IDEMPOTENT_WRITE;
    const answer = await this.call(this.stub.submitJob.bind(this.stub), { job }, retryOn);
    return { job: present(answer.job, "the job"), created: answer.created };
  }

  async get(id: string, namespace = this.namespace): Promise<Job> {
    return this.call(this.stub.getJob.bind(this.stub), { namespace, id }, READ);
  }

  /** One page of a namespace's jobs (next page: its nextPageToken, "" on the last). */
  async list(filter: JobFilter = {}): Promise<ListJobsResponse> {
    const request = {
      namespace: filter.namespace ?? this.namespace,
      pageSize: filter.pageSize ?? 0,
      pageToken: filter.pageToken ?? "",
      state: filter.state ?? 0,
      namePrefix: filter.namePrefix ?? "",
      labels: { ...filter.labels },
    };
    return this.call(this.stub.listJobs.bind(this.stub), request, READ);
  }

  /** Every job the filter selects, page after page. */
  async *jobs(filter: Omit<JobFilter, "pageToken"> = {}): AsyncGenerator<Job> {
    let pageToken = "";
    do {
      const page = await this.list({ ...filter, pageToken });
      yield* page.jobs;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /** One page of a job's runs, newest first. */
  async runs(jobId: string, page: Page = {}): Promise<ListRunsResponse> {
    const request = {
      namespace: page.namespace ?? this.namespace,
      jobId,
      pageSize: page.pageSize ?? 0,
      pageToken: page.pageToken ?? "",
    };
    return this.call(this.stub.listRuns.bind(this.stub), request, READ);
  }

  async getRun(runId: string): Promise<Run> {
    return this.call(this.stub.getRun.bind(this.stub), { runId }, READ);
  }

  /** Stops future fires until resume; `note` says why (kept on the job until then). */
  async pause(id: string, note = "", namespace = this.namespace): Promise<Job> {
    return this.call(this.stub.pauseJob.bind(this.stub), { namespace, id, note }, IDEMPOTENT_WRITE);
  }

  async resume(id: string, namespace = this.namespace): Promise<Job> {
    return this.call(this.stub.resumeJob.bind(this.stub), { namespace, id }, IDEMPOTENT_WRITE);
  }

  /** Stops all future fires; a run in progress is asked to stop. Final. */
  async cancel(id: string, namespace = this.namespace): Promise<Job> {
    return this.call(this.stub.cancelJob.bind(this.stub), { namespace, id }, IDEMPOTENT_WRITE);
  }

  /** Removes a cancelled or completed job (its runs stay readable until they expire). */
  async delete(id: string, namespace = this.namespace): Promise<void> {
    await this.call(this.stub.deleteJob.bind(this.stub), { namespace, id }, IDEMPOTENT_WRITE);
  }

  /** Changes the fields `updateMask` names (of name, trigger, priority, params, options,
   * labels; empty: all six) if `version` is the job's current one (else FAILED_PRECONDITION). */
  async update(
    id: string,
    version: number,
    changes: DeepPartial<JobSpec>,
    updateMask: readonly string[] = [],
    namespace = this.namespace,
  ): Promise<Job> {
    const request = { namespace, id, version, job: JobSpecMessage.fromPartial(changes), updateMask: [...updateMask] };
    return this.call(this.stub.updateJob.bind(this.stub), request, IDEMPOTENT_WRITE);
  }

  /** Runs the job once now, beside its schedule; `overlapPolicy` overrides the job's for it. */
  async trigger(id: string, overlapPolicy: OverlapPolicy = 0, namespace = this.namespace): Promise<TriggerJobResponse> {
    return this.call(this.stub.triggerJob.bind(this.stub), { namespace, id, overlapPolicy }, REFUSED_UNREAD);
  }

  /** Runs the fires the trigger would have produced in [since, until), `perSecond` at most. */
  async backfill(
    id: string,
    since: Date,
    until: Date,
    perSecond = 0,
    namespace = this.namespace,
  ): Promise<BackfillJobResponse> {
    const request = { namespace, id, since, until, perSecond };
    return this.call(this.stub.backfillJob.bind(this.stub), request, IDEMPOTENT_WRITE);
  }

  /** The next `count` fire times (default 10) after `after` (default now) of a stored job
   * (`{ jobId }`) or of a trigger not yet submitted (`{ trigger }`). */
  async preview(
    target: { readonly jobId: string; readonly namespace?: string } | { readonly trigger: Trigger },
    count = 0,
    after?: Date,
  ): Promise<PreviewScheduleResponse> {
    const request =
      "jobId" in target
        ? { job: { namespace: target.namespace ?? this.namespace, id: target.jobId }, count, after }
        : { trigger: target.trigger, count, after };
    return this.call(this.stub.previewSchedule.bind(this.stub), request, READ);
  }

  /** What became of every fire the job's trigger expected in [since, until) (default now). */
  async explain(
    id: string,
    since: Date,
    until?: Date,
    maxFires = 0,
    namespace = this.namespace,
  ): Promise<ExplainJobResponse> {
    const request = { namespace, id, since, until, maxFires };
    return this.call(this.stub.explainJob.bind(this.stub), request, READ);
  }

  /** Each run of a job (of the namespace when `jobId` is empty) as it finishes, from now on,
   * until `signal` aborts or the loop over it stops. */
  async *watchRuns(
    options: { readonly jobId?: string; readonly namespace?: string; readonly signal?: AbortSignal } = {},
  ): AsyncGenerator<RunEvent> {
    const request = { namespace: options.namespace ?? this.namespace, jobId: options.jobId ?? "" };
    const stream = this.stub.watchRuns(request, this.metadata(), {});
    const stop = (): void => stream.cancel();
    options.signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const event of stream) {
        yield event as RunEvent;
      }
    } catch (error) {
      if (isServiceError(error) && error.code === Code.CANCELLED && options.signal?.aborted === true) {
        return;
      }
      throw isServiceError(error) ? errorFromServiceError(error) : error;
    } finally {
      options.signal?.removeEventListener("abort", stop);
      stream.cancel();
    }
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token !== "") {
      metadata.set("authorization", `Bearer ${this.token}`);
    }
    return metadata;
  }

  private async call<Req, Res>(method: Unary<Req, Res>, request: Req, retryOn: ReadonlySet<Code>): Promise<Res> {
    const started = Date.now();
    for (let attempts = 1; ; attempts++) {
      try {
        return await new Promise<Res>((resolve, reject) => {
          method(request, this.metadata(), { deadline: Date.now() + this.timeoutMs }, (error, response) =>
            error === null ? resolve(response) : reject(error),
          );
        });
      } catch (error) {
        if (!isServiceError(error)) {
          throw error;
        }
        const failed = errorFromServiceError(error, attempts);
        const wait = retryDelayMs(
          this.retry,
          failed.code,
          retryOn,
          attempts,
          Date.now() - started,
          failed.retryAfterMs,
        );
        if (wait === undefined) {
          throw failed;
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }
}
