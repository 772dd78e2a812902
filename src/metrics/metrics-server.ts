// The HTTP endpoint for Prometheus-compatible scrapers: GET /metrics (text exposition format 0.0.4), on
// `openmetrics_port`. Anything else is 404; a scrape that fails is a 500 with the reason (and a log line).
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { startHttpEndpoint, type HttpEndpoint } from './http-endpoint.js';

export type MetricsServer = HttpEndpoint;

export async function startMetricsServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  logger: Logger;
}): Promise<MetricsServer> {
  const { registry, logger } = opts;
  const endpoint = await startHttpEndpoint(opts, 'metrics', (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
        .end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) =>
        res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? '' : text),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'metrics scrape failed');
        res
          .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end(`${(err as Error).message}\n`);
      },
    );
  });
  logger.info({ host: opts.host, port: endpoint.port }, 'OpenMetrics endpoint listening on /metrics');
  return endpoint;
}
