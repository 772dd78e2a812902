// The background health check of one shard's replicas (PgDog's idle health check): the first
// idle_healthcheck_delay after the set's pools are created, then every idle_healthcheck_interval after the previous
// check ended (never two at once; the settings are read again each time, so a reload applies at the next one).
import { nextIdleCheckInMs, type HealthSettings } from './health-check.js';
import type { ReplicaSet } from './replica-set.js';

export class IdleHealthMonitor {
  private timer: NodeJS.Timeout | null = null;
  private lastRunAtMs: number | null = null;
  private readonly startedAtMs: number;
  private isStopped = false;

  constructor(
    private readonly set: ReplicaSet,
    private readonly settings: () => HealthSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAtMs = now();
    this.schedule();
  }

  private schedule(): void {
    if (this.isStopped || !this.set.hasReplicas) return;
    const inMs = nextIdleCheckInMs(this.startedAtMs, this.lastRunAtMs, this.now(), this.settings());
    // Off (interval 0): look again after a while, in case a reload turns the checks on.
    this.timer = setTimeout(() => void this.run(inMs === null), inMs ?? 1000);
    this.timer.unref();
  }

  private async run(isOff: boolean): Promise<void> {
    this.timer = null;
    try {
      if (!isOff && !this.set.isPaused()) await this.set.checkIdle();
    } catch (err) {
      // A check reports its failures itself; anything thrown here is a bug: logged, and the checks go on.
      this.set.primary.pool.opts.logger.error({ err }, 'idle health check failed unexpectedly');
    }
    if (!isOff) this.lastRunAtMs = this.now();
    this.schedule();
  }

  stop(): void {
    this.isStopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
