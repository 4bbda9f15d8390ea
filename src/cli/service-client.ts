import { httpJson } from '../sim/world/http-json.js';
import { CliError } from './cli-framework.js';

/** Where a service listens and how to start it, for the one line an unreachable service gets. */
export interface ServiceEndpoint {
  /** "admin API", "simulator". */
  name: string;
  url: string;
  /** How to start it, or which option points elsewhere. */
  hint: string;
}

interface Problem {
  title?: string;
  detail?: string;
  status?: number;
}

const UNREACHABLE = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|EHOSTUNREACH)$/;

/**
 * JSON over plain HTTP to the server's admin listener or the simulator's control API: a 2xx
 * answer's body, or a CliError with the problem's title and detail (the problem itself as detail).
 */
export class ServiceClient {
  constructor(
    readonly endpoint: ServiceEndpoint,
    private readonly token?: () => Promise<string>,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.endpoint.url}${path}`;
    let res;
    try {
      res = await httpJson<T | Problem>(method, url, {
        ...(body === undefined ? {} : { body }),
        ...(this.token ? { token: await this.token() } : {}),
      });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && UNREACHABLE.test(code)) {
        throw new CliError(
          `the ${this.endpoint.name} at ${this.endpoint.url} cannot be reached (${code}): ${this.endpoint.hint}`,
          3,
        );
      }
      throw error;
    }
    if (res.status >= 200 && res.status < 300) return res.body as T;
    const problem = typeof res.body === 'object' && res.body !== null ? (res.body as Problem) : undefined;
    const title = problem?.title ?? `HTTP ${res.status}`;
    const detail = problem?.detail ?? (res.text.length > 0 ? res.text.slice(0, 200) : `${method} ${url}`);
    throw new CliError(`${title}: ${detail}`, 1, problem ?? { status: res.status, body: res.text });
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }
}
