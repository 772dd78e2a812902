// The little HTTP servers beside the proxy (OpenMetrics, the load-balancer health endpoint): listen on host:port
// (0: any free port), log errors after start-up, and close with their connections.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface HttpEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

/** Listen with `handler`; rejects when the port cannot be taken. `what` names it in log lines. */
export async function startHttpEndpoint(
  opts: { host: string; port: number; logger: Logger },
  what: string,
  handler: http.RequestListener,
): Promise<HttpEndpoint> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.logger.error({ err: err.message }, `${what} listener error`));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
