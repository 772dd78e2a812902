// Hold the proxy's commits at a failpoint of txn/failpoints.ts (in-process proxies only): every commit that reaches
// it waits until `release()`; `reached` resolves when the first one is there.
import { setFailpoint, type FailpointName } from '../../src/txn/failpoints.js';

export function holdAt(name: FailpointName): { reached: Promise<void>; release: () => void } {
  let release = (): void => undefined;
  let isThere = (): void => undefined;
  const reached = new Promise<void>((r) => (isThere = r));
  const released = new Promise<void>((r) => (release = r));
  setFailpoint(name, {
    kind: 'call',
    fn: async () => {
      isThere();
      await released;
    },
  });
  return { reached, release };
}
