// The transport loads undici's agent, proxy agent and request API from their own files (not the
// package's entry point): they must still work as the entry point would make them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { undiciAgent, undiciEnvHttpProxyAgent } from '../../src/registry/undici-parts.ts';

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

test('the agent sends a request and reads its answer', async () => {
  const server = createServer((req, res) => res.end(`direct ${req.method} ${req.url}`));
  const port = await listen(server);
  const agent = new (undiciAgent())({});
  try {
    const r = await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/v2/?x=1', method: 'GET' });
    assert.is(r.statusCode, 200);
    assert.is(await r.body.text(), 'direct GET /v2/?x=1');
  } finally {
    await agent.close();
    server.close();
  }
});

test('the proxy agent tunnels a request through the proxy, and goes around it for NO_PROXY hosts', async () => {
  const direct = createServer((req, res) => res.end(`direct ${req.url}`));
  const directPort = await listen(direct);
  // The proxy opens every tunnel to the direct server, whatever name it was asked for.
  const tunnels: string[] = [];
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const upstream = connect(directPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const proxyPort = await listen(proxy);
  const agent = new (undiciEnvHttpProxyAgent())({ httpProxy: `http://127.0.0.1:${proxyPort}`, noProxy: '127.0.0.1' });
  try {
    const via = await agent.request({ origin: 'http://registry.example.test:5000', path: '/v2/', method: 'GET' });
    assert.is(await via.body.text(), 'direct /v2/');
    assert.equal(tunnels, ['registry.example.test:5000']);
    const around = await agent.request({ origin: `http://127.0.0.1:${directPort}`, path: '/v2/x', method: 'GET' });
    assert.is(await around.body.text(), 'direct /v2/x');
    assert.is(tunnels.length, 1, 'the NO_PROXY host was not tunnelled');
  } finally {
    await agent.destroy();
    proxy.closeAllConnections();
    direct.closeAllConnections();
    proxy.close();
    direct.close();
  }
});

test.run();
