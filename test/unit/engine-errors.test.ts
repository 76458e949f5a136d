import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerEngine, faultOf, isPortConflict, shortId } from '../../src/engine/docker.js';

const apiError = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) ${message}`), { statusCode, json: { message } });
const ID = 'a'.repeat(64);

/** A DockerEngine over a stub dockerode whose container calls fail with `err` (or succeed when undefined). */
function engineFailing(err: unknown): DockerEngine {
  const fail = async () => {
    if (err) throw err;
  };
  const docker = { getContainer: () => ({ start: fail, stop: fail, remove: fail }) } as unknown as Docker;
  return new DockerEngine({ docker, env: {} });
}

describe('faultOf / isPortConflict: the engine error read in one place', () => {
  it.each([
    ['the port allocator (another container)', apiError(500, 'driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:9301 failed: port is already allocated'), true],
    ['docker-proxy (another process)', apiError(500, 'failed to bind host port for 127.0.0.1:9301: address already in use'), true],
    ['a 4xx naming a port is not a conflict', apiError(400, 'invalid port spec: address already in use'), false],
    ['another 500', apiError(500, 'OCI runtime create failed'), false],
  ])('%s', (_, err, want) => {
    expect(isPortConflict(faultOf(err))).toBe(want);
  });

  it('reads the docker CLI stderr (last lines) and socket codes', () => {
    expect(faultOf(Object.assign(new Error('Command failed'), { stderr: 'a\nb\nc\nfailed to create service x: No such image\n' }))).toEqual({ status: undefined, code: undefined, message: 'b c failed to create service x: No such image' });
    expect(faultOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('shortens ids, keeps names', () => {
    expect(shortId(ID)).toBe('aaaaaaaaaaaa');
    expect(shortId(`sha256:${ID}`)).toBe('aaaaaaaaaaaa');
    expect(shortId('nexus-agent-data-agent')).toBe('nexus-agent-data-agent');
  });
});

describe('DockerEngine: one error path for every call', () => {
  it('maps a port conflict on start to PORT_IN_USE naming the short id', async () => {
    await expect(engineFailing(apiError(500, 'Bind for 127.0.0.1:9301 failed: port is already allocated')).startContainer(ID)).rejects.toMatchObject({
      code: 'PORT_IN_USE',
      message: expect.stringMatching(/^start container aaaaaaaaaaaa: its host port is taken/),
    });
  });

  it('tolerates what is fine (304 on start and stop, 404 on stop and remove) and wraps the rest with context', async () => {
    await expect(engineFailing(apiError(304, 'already started')).startContainer(ID)).resolves.toBeUndefined();
    await expect(engineFailing(apiError(304, 'already stopped')).stopContainer(ID)).resolves.toBeUndefined();
    await expect(engineFailing(apiError(404, 'No such container')).stopContainer(ID)).resolves.toBeUndefined();
    await expect(engineFailing(apiError(404, 'No such container')).removeContainer(ID)).resolves.toBeUndefined();
    await expect(engineFailing(apiError(404, 'No such container')).startContainer(ID)).rejects.toMatchObject({ code: 'ENGINE_ERROR', message: 'start container aaaaaaaaaaaa: No such container', details: { statusCode: 404 } });
    await expect(engineFailing(apiError(409, 'You cannot remove a running container')).removeContainer(ID)).rejects.toMatchObject({ code: 'ENGINE_ERROR' });
    await expect(engineFailing(Object.assign(new Error('connect EACCES'), { code: 'EACCES' })).stopContainer(ID)).rejects.toMatchObject({ code: 'ENGINE_UNREACHABLE' });
  });
});
