// Owns: the two look-alikes of Docker Hub images the e2e clients pull, pushed to the shared test registry:
// library/alpine:3.19 (Docker schema2, one platform: the host's) and library/nginx:1.25 (OCI index,
// linux/amd64 + linux/arm64), both on the same base layer. Seeds are fixed, so every push yields the same
// digests and test files may push concurrently.
import { buildLayer, buildOciIndexImage, buildSchema2Image, pushImage, type TestImage } from '../fixtures/images.js';

export interface E2eImages {
  alpine: TestImage;
  nginx: TestImage;
}

const MiB = 1024 * 1024;

/** Docker's name for the host architecture, so a single-platform alpine is what a client would pick here. */
export function hostArchitecture(): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', s390x: 's390x' };
  return names[process.arch] ?? process.arch;
}

export async function pushE2eImages(registryUrl: string): Promise<E2eImages> {
  const [base, amd64, arm64] = await Promise.all([
    buildLayer({ sizeBytes: 2 * MiB, seed: 'e2e-alpine-base' }),
    buildLayer({ sizeBytes: 1 * MiB, seed: 'e2e-nginx-amd64' }),
    buildLayer({ sizeBytes: 1 * MiB, seed: 'e2e-nginx-arm64' }),
  ]);
  const alpine = buildSchema2Image({ os: 'linux', architecture: hostArchitecture(), layers: [base] });
  const nginx = buildOciIndexImage([
    { os: 'linux', architecture: 'amd64', layers: [base, amd64] },
    { os: 'linux', architecture: 'arm64', layers: [base, arm64] },
  ]);
  const [a, n] = await Promise.all([
    pushImage(registryUrl, 'library/alpine', '3.19', alpine),
    pushImage(registryUrl, 'library/nginx', '1.25', nginx),
  ]);
  return { alpine: a, nginx: n };
}


/** The config and layer digests a pull of `image` needs: every platform's, or only the host's. */
export function blobsPulled(image: TestImage, o: { allPlatforms: boolean }): string[] {
  const platforms = image.platforms.filter((p) => o.allPlatforms || p.architecture === hostArchitecture());
  return platforms.flatMap((p) => [p.config, ...p.layers.map((l) => l.digest)]);
}
