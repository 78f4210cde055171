// Test projects, by what they need from the machine (README.md "Test environment"):
// - unit: no API server, databases or node. Pure code, plus real processes on 127.0.0.1 only:
//   brokers in-process and as `node broker/main.ts`, Debian's mosquitto clients, openssl-made
//   certificates, small HTTP servers standing in for auth services.
// - integration: a real control plane, node and databases (PostgreSQL, MariaDB, Redis), started once
//   per run by test/support/global-setup.ts and shared by every file.
// - e2e: the same world; the user journey on the node and the seed scenarios through CRs only.
// - start: `npm start` end to end. It brings up a node of its own, so scripts/test.sh runs it after
//   the other projects have stopped theirs (one node per machine).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'start',
          include: ['test/start/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
