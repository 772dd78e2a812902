// A prom-client Histogram whose values are read at scrape time from shardgate's own DurationHistograms (seconds, the
// same buckets), so the hot path never calls prom-client: only get() is replaced; registry and text format are
// prom-client's.
import { Histogram, type Registry } from 'prom-client';
import { DURATION_BUCKETS_MS, type DurationHistogram } from '../stats/duration-histogram.js';

export interface HistogramSeries {
  labels: Record<string, string | number>;
  histogram: DurationHistogram;
}

const BUCKETS_SECONDS = DURATION_BUCKETS_MS.map((ms) => ms / 1000);

interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class StatsHistogram extends Histogram<string> {
  private readonly series: () => HistogramSeries[];

  constructor(opts: {
    name: string;
    help: string;
    labelNames: string[];
    registry: Registry;
    series: () => HistogramSeries[];
  }) {
    super({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames,
      buckets: BUCKETS_SECONDS,
      registers: [opts.registry],
    });
    this.series = opts.series;
  }

  /** What prom-client's registry formats (it prefers this method over get()). */
  async getForPromString(): Promise<Awaited<ReturnType<Histogram<string>['get']>>> {
    return this.get();
  }

  override async get(): Promise<Awaited<ReturnType<Histogram<string>['get']>>> {
    const name = (this as unknown as { name: string }).name;
    const values: ExportedValue[] = [];
    for (const { labels, histogram } of this.series()) {
      let cumulative = 0;
      BUCKETS_SECONDS.forEach((le, i) => {
        cumulative += histogram.counts[i];
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push({
        labels: { ...labels, le: '+Inf' },
        value: histogram.count,
        metricName: `${name}_bucket`,
      });
      values.push({ labels, value: histogram.sumMs / 1000, metricName: `${name}_sum` });
      values.push({ labels, value: histogram.count, metricName: `${name}_count` });
    }
    const help = (this as unknown as { help: string }).help;
    return { name, help, type: 'histogram', values, aggregator: 'sum' } as unknown as Awaited<
      ReturnType<Histogram<string>['get']>
    >;
  }
}
