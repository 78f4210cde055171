-- Seed 001's scenario: `admin` is a superuser and may do anything; `frontendclient` may only
-- publish to topic/<its own client id>/status; `backendservice` may only subscribe to
-- topic/+/status. `worker` shows shared subscriptions restricted to one group.
-- Passwords (bcrypt, cost 10): admin-secret, frontend-secret, backend-secret, worker-secret.
INSERT INTO users (username, password_hash, is_superuser) VALUES
  ('admin',          '$2b$10$Wbhitzdyk8iJwrq2YTxDzeEXcKUQeBTNIqBx7EXxphtNfx9rguRT.', true),
  ('frontendclient', '$2b$10$/S6oFVrssM13jLrn1q4fcuevCSzjGza7PjzEBiRyIaJ2jT/Ky.G5K', false),
  ('backendservice', '$2b$10$g09WuFf4aAF0I30XBHz0FOASDJhQVcLOCXQvFkejklonoCrEgqOxS', false),
  ('worker',         '$2b$10$F5FPQ8KUZ6QOvuIZKJ.uruo2nBwbabsZAnXM9vK6d8z0B2SdaddFi', false);

INSERT INTO roles (name, description) VALUES
  ('frontend', 'devices: report own status'),
  ('backend',  'services: read every status'),
  ('workers',  'job consumers in the "backend" share group');

INSERT INTO permissions (topic, publish_allowed, subscribe_allowed, qos_0_allowed, qos_1_allowed, qos_2_allowed, retained_msgs_allowed, shared_sub_allowed, shared_group) VALUES
  ('topic/${clientid}/status', true,  false, true, true, false, true,  false, NULL),  -- 1: frontend
  ('topic/+/status',           false, true,  true, true, true,  false, false, NULL),  -- 2: backend
  ('jobs/#',                   false, true,  true, true, false, false, true,  'backend');  -- 3: workers

INSERT INTO user_roles (user_id, role_id)
  SELECT u.id, r.id FROM users u JOIN roles r ON (u.username, r.name) IN
    (('frontendclient', 'frontend'), ('backendservice', 'backend'), ('worker', 'workers'));

INSERT INTO role_permissions (role_id, permission_id)
  SELECT r.id, p.id FROM roles r JOIN permissions p ON (r.name, p.topic) IN
    (('frontend', 'topic/${clientid}/status'), ('backend', 'topic/+/status'), ('workers', 'jobs/#'));
