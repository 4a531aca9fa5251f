// How a client reaches a coordinator: address, TLS files, token. Read from the environment
// variables the CLI, the Python SDK and the workers use, so one setup serves every client.
import { isIP } from "node:net";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry";

export interface ClientOptions {
  /** host:port of a coordinator, or several comma-separated (calls go round-robin to the
   * replicas that are up), or any gRPC target; default 127.0.0.1:7070. */
  readonly address?: string;
  /** PEM file of the CA to trust; with it (or a client certificate) the channel uses TLS. */
  readonly caFile?: string;
  /** PEM files of a client certificate and its key, for coordinators asking for mutual TLS. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** The bearer token sent with every call ("" or unset: none). */
  readonly token?: string;
  /** The namespace of calls that do not name one; default "default". */
  readonly namespace?: string;
  /** Deadline of each attempt, in milliseconds; default 30 s. */
  readonly timeoutMs?: number;
  /** Retries of calls failing with UNAVAILABLE (and RESOURCE_EXHAUSTED, reads on a deadline). */
  readonly retry?: RetryPolicy;
}

export const DEFAULT_ADDRESS = "127.0.0.1:7070";

/** Options from $HOURGLASS_COORDINATOR, $HOURGLASS_TLS_CA_FILE, $HOURGLASS_TLS_CLIENT_CERT_FILE, $HOURGLASS_TLS_CLIENT_KEY_FILE and
 * $HOURGLASS_TOKEN; unset or empty variables give no option. */
export function optionsFromEnv(env: NodeJS.ProcessEnv): ClientOptions {
  const value = (name: string): string | undefined => {
    const found = env[name]?.trim();
    return found === undefined || found === "" ? undefined : found;
  };
  const options: { -readonly [K in keyof ClientOptions]: ClientOptions[K] } = {};
  const address = value("HOURGLASS_COORDINATOR");
  if (address) options.address = address;
  const caFile = value("HOURGLASS_TLS_CA_FILE");
  if (caFile) options.caFile = caFile;
  const certFile = value("HOURGLASS_TLS_CLIENT_CERT_FILE");
  if (certFile) options.certFile = certFile;
  const keyFile = value("HOURGLASS_TLS_CLIENT_KEY_FILE");
  if (keyFile) options.keyFile = keyFile;
  const token = value("HOURGLASS_TOKEN");
  if (token) options.token = token;
  return options;
}

/** The options with every default filled in; throws on values no call could work with. */
export function resolveOptions(
  options: ClientOptions,
): Required<Omit<ClientOptions, "caFile" | "certFile" | "keyFile">> &
  Pick<ClientOptions, "caFile" | "certFile" | "keyFile"> {
  if ((options.certFile === undefined) !== (options.keyFile === undefined)) {
    throw new TypeError("certFile and keyFile go together: give both or neither");
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!(timeoutMs > 0)) {
    throw new RangeError(`timeoutMs must be positive, not ${timeoutMs}`);
  }
  const retry = options.retry ?? DEFAULT_RETRY;
  if (retry.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be at least 1, not ${retry.maxAttempts}`);
  }
  return {
    ...options,
    address: options.address ?? DEFAULT_ADDRESS,
    token: options.token ?? "",
    namespace: options.namespace ?? "default",
    timeoutMs,
    retry,
  };
}

/** The gRPC target for `address`, and whether it names several replicas. One address is used
 * as given. Several "ip:port" addresses (all IPv4 or all IPv6) become one `ipv4:`/`ipv6:`
 * target, to be balanced round-robin, so a call goes to a replica that is up (as the Python
 * SDK does); host names are not resolved here, so a list with one goes by DNS to the first. */
export function channelTarget(address: string): { readonly target: string; readonly replicas: number } {
  const parts = address
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (parts.length === 0) {
    throw new RangeError(`no coordinator address in ${JSON.stringify(address)}`);
  }
  if (parts.length === 1) {
    return { target: parts[0]!, replicas: 1 };
  }
  const versions = parts.map((part) => isIP(part.slice(0, part.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1")));
  if (versions.every((v) => v === 4) || versions.every((v) => v === 6)) {
    return { target: `ipv${versions[0]}:${parts.join(",")}`, replicas: parts.length };
  }
  return { target: `dns:///${parts[0]}`, replicas: 1 };
}
