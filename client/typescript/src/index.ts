// @hourglass/client: the TypeScript/Node client of Hourglass.
export { HourglassClient, type JobFilter, type JobSpecInput, type Page, type Submitted } from "./client";
export { errorFromServiceError, errorFromStatus, HourglassError, readRichDetails, type RichDetails } from "./errors";
export { type ClientOptions, DEFAULT_ADDRESS, optionsFromEnv } from "./options";
export { DEFAULT_RETRY, type RetryPolicy } from "./retry";
export { cron, duration, every, json, once, parseJson } from "./triggers";
export * from "./gen/hourglass/v1/jobs";
export { status as Code } from "@grpc/grpc-js";
