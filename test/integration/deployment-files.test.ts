import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface ComposeService {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};

/** `dist/src/x.js` in a command must come from `src/x.ts`. */
function entryExists(command: string[] | undefined): boolean {
  const entry = command?.find((part) => part.startsWith('dist/'));
  return entry !== undefined && existsSync(entry.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
}

describe('docker-compose.yml', () => {
  it('has the whole stack: postgres, redis, one-shot pki and migrate, api, worker, sim', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'api',
      'migrate',
      'pki',
      'postgres',
      'redis',
      'sim',
      'worker',
    ]);
  });

  it('runs Redis with noeviction and AOF', () => {
    const command = compose.services.redis.command!.join(' ');
    expect(command).toContain('--maxmemory-policy noeviction');
    expect(command).toContain('--appendonly yes');
  });

  it('gives every long-running dependency a health check and orders start-up on it', () => {
    for (const name of ['postgres', 'redis', 'api'])
      expect(compose.services[name].healthcheck?.test.length).toBeGreaterThan(0);
    expect(compose.services.migrate.depends_on?.postgres.condition).toBe('service_healthy');
    for (const name of ['api', 'worker']) {
      expect(compose.services[name].depends_on).toMatchObject({
        migrate: { condition: 'service_completed_successfully' },
        pki: { condition: 'service_completed_successfully' },
        redis: { condition: 'service_healthy' },
      });
    }
  });

  it('starts entry points that exist in the sources, with the same configuration', () => {
    for (const name of ['pki', 'migrate', 'api', 'worker']) {
      expect(entryExists(compose.services[name].command), name).toBe(true);
      expect(compose.services[name].environment?.DATABASE_URL).toContain('@postgres:5432/');
      expect(compose.services[name].environment?.PKI_DIR).toBe('/pki');
    }
  });

  it('publishes the admin listener on loopback only and the mTLS listener', () => {
    expect(compose.services.api.ports).toEqual(['8443:8443', '127.0.0.1:8080:8080']);
  });

  it('runs the simulator from the same image once the api is healthy, with a health check on its control API', () => {
    const sim = compose.services.sim;
    expect(sim.image).toBe(compose.services.api.image);
    expect(sim.command).toEqual(['node', 'dist/src/sim/main.js']);
    expect(entryExists(sim.command)).toBe(true);
    expect(sim.ports).toEqual(['127.0.0.1:9443:9443', '127.0.0.1:9444:9444', '127.0.0.1:9090:9090']);
    expect(sim.depends_on).toEqual({ api: { condition: 'service_healthy' } });
    expect(sim.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:9090/health');
    expect(sim.volumes).toContain('pki:/pki');
    expect(sim.environment).toMatchObject({
      SIM_PKI_DIR: '/pki',
      SIM_SERVER_API_URL: 'https://api:8443',
      SIM_SERVER_ADMIN_URL: 'http://api:8080',
      SIM_TELEMATICS_URL: 'https://sim:9444',
    });
  });

  it("points the server's notifications at the simulator's Device OEM backend", () => {
    for (const name of ['api', 'worker'])
      expect(compose.services[name].environment?.PARTNER_NOTIFICATION_URLS).toBe('device-oem=https://sim:9443');
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync('Dockerfile', 'utf8');
  it('builds on Node 24 LTS and runs as an unprivileged user', () => {
    const images = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const image of images) expect(image).toMatch(/^node:24[-.]/);
    expect(dockerfile).toMatch(/^USER node$/m);
  });

  it('copies only files that exist and starts the api entry point', () => {
    for (const [line] of dockerfile.matchAll(/^COPY (?!--from).*$/gm)) {
      const sources = line.split(/\s+/).slice(1, -1);
      for (const path of sources) expect(existsSync(path), path).toBe(true);
    }
    expect(dockerfile).toContain('CMD ["node", "dist/src/main.js"]');
  });
});
