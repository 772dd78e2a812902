// The container's health check (Dockerfile HEALTHCHECK; plain Node, no other tool in the image): healthy when the
// proxy's HTTP health endpoint (`healthcheck_port`, SHARDGATE_HEALTHCHECK_PORT, default 8080) answers 200, unhealthy
// when it answers anything else (503: no server of a database can be reached) or does not answer in 4 s. When
// nothing listens there (the endpoint is off in pgdog.toml), healthy when the proxy's own port (SHARDGATE_PORT,
// default 6432) accepts TCP connections — which it does only once start-up recovery is done.
import http from 'node:http';
import net from 'node:net';

const HOST = '127.0.0.1';
const healthPort = Number(process.env.SHARDGATE_HEALTHCHECK_PORT ?? 8080);
const proxyPort = Number(process.env.SHARDGATE_PORT ?? 6432);
const TIMEOUT_MS = 4_000;

function tcpFallback() {
  const socket = net.connect(proxyPort, HOST);
  socket.setTimeout(TIMEOUT_MS, () => process.exit(1));
  socket.on('connect', () => process.exit(0)).on('error', () => process.exit(1));
}

const request = http.get({ host: HOST, port: healthPort, path: '/', timeout: TIMEOUT_MS }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
request.on('timeout', () => process.exit(1));
request.on('error', (err) => (err.code === 'ECONNREFUSED' ? tcpFallback() : process.exit(1)));
