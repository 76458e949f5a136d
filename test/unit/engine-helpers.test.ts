import { describe, expect, it } from 'vitest';
import { demuxLogBuffer, dockerOptions, engineEndpoint, engineEventOf, splitRef } from '../../src/engine/docker.js';
import { openDockerEngine } from '../../src/engine/open.js';
import { parseLdd } from '../../src/engine/rootfs.js';

describe('parseLdd', () => {
  it('lists absolute library paths, skipping the vDSO', () => {
    const out = `\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n`;
    expect(parseLdd(out)).toEqual(['/lib/x86_64-linux-gnu/libdl.so.2', '/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  });
  it('fails on a missing library', () => expect(() => parseLdd('\tlibfoo.so => not found\n')).toThrow(/missing shared library/));
  it('accepts a static binary', () => expect(parseLdd('\tstatically linked\n')).toEqual([]));
});

describe('demuxLogBuffer', () => {
  it('joins stdout and stderr frames of the multiplexed stream', () => {
    const frame = (stream: number, text: string) => {
      const body = Buffer.from(text);
      const h = Buffer.alloc(8);
      h[0] = stream;
      h.writeUInt32BE(body.length, 4);
      return Buffer.concat([h, body]);
    };
    expect(demuxLogBuffer(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n')]))).toBe('out\nerr\n');
  });
  it('passes TTY logs through', () => expect(demuxLogBuffer(Buffer.from('plain text'))).toBe('plain text'));
});

describe('engine addressing', () => {
  it('follows DOCKER_HOST like the docker CLI', () => {
    expect(engineEndpoint({})).toBe('unix:///var/run/docker.sock');
    expect(engineEndpoint({ DOCKER_HOST: 'tcp://10.0.0.2:2375' })).toBe('tcp://10.0.0.2:2375');
  });
  it('connects where DOCKER_HOST says', () => {
    expect(dockerOptions({})).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(dockerOptions({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toEqual({ socketPath: '/run/user/1000/docker.sock' });
    expect(dockerOptions({ DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toEqual({ host: '127.0.0.1', port: 2375, protocol: 'http' });
  });
  it('splits image references', () => {
    expect(splitRef('nexus-delta-agent:latest')).toEqual(['nexus-delta-agent', 'latest']);
    expect(splitRef('localhost:5000/a/b')).toEqual(['localhost:5000/a/b', 'latest']);
    expect(splitRef('localhost:5000/a:1.2')).toEqual(['localhost:5000/a', '1.2']);
  });
});

describe('engine events', () => {
  it('reads an Engine API /events line: kind, id, labels, time in ms, exit code', () => {
    const line = { Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { exitCode: '137', 'dev.nexus-delta.agent': 'a' } }, time: 1700000000, timeNano: 1700000000123456789 };
    expect(engineEventOf(line)).toEqual({ kind: 'die', id: 'abc', labels: { exitCode: '137', 'dev.nexus-delta.agent': 'a' }, at: 1700000000123, exitCode: 137 });
    expect(engineEventOf({ ...line, Action: 'exec_start: sh', Actor: { ID: 'abc' } })).toBeUndefined();
    expect(engineEventOf({ ...line, Type: 'network' })).toBeUndefined();
    expect(engineEventOf({ Type: 'container', Action: 'health_status: unhealthy', Actor: { ID: 'x' }, time: 2 })).toBeUndefined();
  });

  it('the lazily loaded engine gives events as a stream (not a promise) that ends when the signal is aborted', async () => {
    const engine = openDockerEngine({ DOCKER_HOST: 'unix:///nonexistent.sock' });
    const seen: unknown[] = [];
    for await (const ev of engine.events({}, AbortSignal.abort())) seen.push(ev);
    expect(seen).toEqual([]);
  });
});
