// A blob's file is released however its answer ends (issue 14, finding 9): a stored media type with CR/LF made
// writeHead throw before the try/finally that releases the file, leaking a descriptor per request.
import { describe, expect, it } from 'vitest';
import { createRoutes } from '../../src/http/routes.js';
import { fakeBlob, fakeContext, fakeDeps } from './route-fakes.js';

const DIGEST = `sha256:${'b'.repeat(64)}`;

describe('blob answers release the file', () => {
  it('releases the file when writeHead throws on a bad stored media type', async () => {
    const blob = fakeBlob(10, 'text/plain\r\nx-injected: 1');
    const handler = createRoutes(fakeDeps(() => blob.handle));
    const invalidHeader = (): never => {
      throw Object.assign(new TypeError('Invalid character in header content ["content-type"]'), { code: 'ERR_INVALID_CHAR' });
    };
    for (const range of [undefined, 'bytes=0-4']) {
      const { ctx } = fakeContext('GET', `/v2/library/alpine/blobs/${DIGEST}`, range ? { range } : {}, invalidHeader);
      await expect(handler(ctx)).rejects.toThrow(TypeError);
    }
    expect(blob.released()).toBe(2);
  });

  it('releases the file once after sending it', async () => {
    const blob = fakeBlob(10);
    const { ctx, written } = fakeContext('GET', `/v2/library/alpine/blobs/${DIGEST}`);
    await createRoutes(fakeDeps(() => blob.handle))(ctx);
    expect(written).toMatchObject({ status: 200, ended: true });
    expect(blob.released()).toBe(1);
  });

  it('answers a stored media type that no header can carry as application/octet-stream', async () => {
    for (const method of ['GET', 'HEAD']) {
      const blob = fakeBlob(10, 'text/plain\r\nx-injected: 1');
      const deps = fakeDeps(() => blob.handle, { size: 10, mediaType: 'text/plain\u2028', manifest: false });
      const { ctx, written } = fakeContext(method, `/v2/library/alpine/blobs/${DIGEST}`);
      await createRoutes(deps)(ctx);
      expect(written.headers['content-type']).toBe('application/octet-stream');
    }
  });
});
