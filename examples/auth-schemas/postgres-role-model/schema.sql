-- Seed 001's role model for the Enclave `postgres` auth source: users → roles → permissions.
-- All permissions are allow-lists (as in HiveMQ ESE); anything not granted falls to the broker's
-- `authorization.noMatch` (deny). Topics may contain ${clientid} and ${username}; the broker fills
-- them in per client and refuses values containing + # / (so a client id "#" grants nothing).
CREATE TABLE users (
  id            serial PRIMARY KEY,
  username      text UNIQUE NOT NULL,
  password_hash text NOT NULL,              -- bcrypt ($2b$...), see README for other formats
  salt          text NOT NULL DEFAULT '',   -- unused by bcrypt; used by sha256/pbkdf2 hashes
  is_superuser  boolean NOT NULL DEFAULT false
);

CREATE TABLE roles (
  id          serial PRIMARY KEY,
  name        text UNIQUE NOT NULL,
  description text
);

CREATE TABLE user_roles (
  user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role_id integer NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, role_id)
);

CREATE TABLE permissions (
  id                    serial PRIMARY KEY,
  topic                 text NOT NULL,                  -- filter; ${clientid} / ${username} allowed
  publish_allowed       boolean NOT NULL DEFAULT false,
  subscribe_allowed     boolean NOT NULL DEFAULT false,
  qos_0_allowed         boolean NOT NULL DEFAULT true,
  qos_1_allowed         boolean NOT NULL DEFAULT true,
  qos_2_allowed         boolean NOT NULL DEFAULT true,
  retained_msgs_allowed boolean NOT NULL DEFAULT false,
  shared_sub_allowed    boolean NOT NULL DEFAULT false,  -- may subscribe as $share/<group>/<topic>
  shared_group          text,                           -- NULL = any group (when shared_sub_allowed)
  CHECK (qos_0_allowed OR qos_1_allowed OR qos_2_allowed)
);

CREATE TABLE role_permissions (
  role_id       integer NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  permission_id integer NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
  PRIMARY KEY (role_id, permission_id)
);

-- The auth source's database user needs nothing but SELECT.
-- CREATE ROLE mqtt_auth LOGIN PASSWORD '...';  GRANT SELECT ON ALL TABLES IN SCHEMA public TO mqtt_auth;
