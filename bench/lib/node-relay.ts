// Benchmark reference (not part of the proxy): the cheapest PostgreSQL hop Node can make. A parse-free 1:1 relay —
// one upstream connection per client, no pooling, no protocol parsing — built from the socket APIs shardgate itself
// uses: client bytes through the socket's 'data' events, server bytes through `onread` into one reused buffer, every
// chunk passed on with one `write`. Its CPU per transaction is Node's floor for a hop on this machine: whatever
// shardgate spends above it is shardgate's own work (issue 16 goals 2 and 3). Started by bench/pgbench-compare.ts
// (`--relay yes`) as a child: `node --import tsx bench/lib/node-relay.ts <listen port> <upstream host> <upstream port>`.
// Several triples: one process listening on each port, each relayed to its own upstream — client-side routing through
// one Node hop (bench/pgbench-sharded.ts `--floor yes`: the floor of a sharding hop).
import net from 'node:net';

const triples = process.argv.slice(2);
if (triples.length === 0 || triples.length % 3 !== 0) {
  process.stderr.write('usage: node-relay.ts (<listen port> <upstream host> <upstream port>)...\n');
  process.exit(2);
}
for (let i = 0; i < triples.length; i += 3) relay(triples[i], triples[i + 1], triples[i + 2]);

function relay(listenPort: string, upstreamHost: string, upstreamPort: string): void {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({
      host: upstreamHost,
      port: Number(upstreamPort),
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(64 * 1024),
        // The buffer is reused for the next read: the client gets a copy of the bytes, as shardgate's sinks do.
        callback: (n: number, buf: Buffer): boolean => {
          client.write(Buffer.from(buf.subarray(0, n)));
          return true;
        },
      },
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
  });
  server.listen(Number(listenPort), '127.0.0.1', () => {
    process.stdout.write(`node relay on 127.0.0.1:${listenPort} → ${upstreamHost}:${upstreamPort}\n`);
  });
}
process.on('SIGTERM', () => process.exit(0));
