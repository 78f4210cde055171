// Every auth backend against the same data set and the same expected decisions (conformance.ts),
// on the real services: PostgreSQL, MariaDB, Redis from the test world, a local HTTP auth service,
// real JWTs and real client certificates.
import { world } from '../../support/world.ts';
import { authConformanceSuite } from './conformance.ts';
import { builtinFixture, httpFixture, jwtFixture, redisFixture, sqlFixture, x509Fixture } from './fixtures.ts';

authConformanceSuite('builtin', builtinFixture);
authConformanceSuite('postgres', () => sqlFixture('postgres', world().postgres, 'auth_conformance'));
authConformanceSuite('mysql', () => sqlFixture('mysql', world().mariadb, 'auth_conformance'));
authConformanceSuite('redis', () => redisFixture(world().redis, 7));
authConformanceSuite('http', httpFixture);
authConformanceSuite('jwt', jwtFixture);
authConformanceSuite('x509', x509Fixture);
