// The parts of undici the transport uses, loaded on their own. undici's entry point loads all of
// it (fetch, WebSocket, cache stores, mock agents, …): ~110 modules, ~14 MB more resident memory in
// a bare process (~5 MB on a real pull) and ~50 ms more start-up than the agent and the request
// API (33 modules). extract's peak memory has a budget,
// so the transport takes these files directly. They are the ones the entry point itself loads; the
// version is pinned by the lockfile, and every registry test goes through them.
import { createRequire } from 'node:module';
import type { Agent as AgentClass, Dispatcher as DispatcherClass, EnvHttpProxyAgent as EnvHttpProxyAgentClass } from 'undici';

const require = createRequire(import.meta.url);

/** undici's Agent, with the request API installed as its entry point does. */
export function undiciAgent(): typeof AgentClass {
  const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as typeof DispatcherClass;
  if (!('request' in Dispatcher.prototype)) Object.assign(Dispatcher.prototype, require('undici/lib/api/index.js') as object);
  return require('undici/lib/dispatcher/agent.js') as typeof AgentClass;
}

/** undici's EnvHttpProxyAgent (only loaded when a proxy is configured). */
export function undiciEnvHttpProxyAgent(): typeof EnvHttpProxyAgentClass {
  undiciAgent();
  return require('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof EnvHttpProxyAgentClass;
}
