// FrameList: the reused list of one write's frames (protocol/frame-list.ts).
import { describe, expect, it } from 'vitest';
import { FrameList } from '../../../src/protocol/frame-list.js';

describe('FrameList', () => {
  it('joins its frames in order; one frame is sent as itself', () => {
    const list = new FrameList();
    const a = Buffer.from('P\x00\x00\x00\x04');
    list.push(a);
    expect(list.join()).toBe(a);
    list.push(Buffer.from('B'));
    list.push(Buffer.from('SYNC'));
    expect(list.length).toBe(3);
    expect(list.join().toString('latin1')).toBe('P\x00\x00\x00\x04BSYNC');
  });

  it('starts empty again after clear and holds none of the old frames', () => {
    const list = new FrameList();
    for (const s of ['one', 'two', 'three']) list.push(Buffer.from(s));
    list.clear();
    expect(list.length).toBe(0);
    expect(list.join().length).toBe(0);
    list.push(Buffer.from('x'));
    list.push(Buffer.from('y'));
    expect(list.join().toString()).toBe('xy');
    // The third slot of the first use is not sent again: only the frames pushed since the clear.
    expect(list.length).toBe(2);
  });
});
