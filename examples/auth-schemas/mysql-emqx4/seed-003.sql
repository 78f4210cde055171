-- Seed 003's sample rows (EMQX 4's shipped examples). emqx / public: sha256 without salt.
INSERT INTO mqtt_user (username, password, salt, is_superuser)
VALUES ('emqx', 'efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7', NULL, 0);

INSERT INTO mqtt_acl (allow, ipaddr, username, clientid, access, topic) VALUES
  (1, NULL, '$all', NULL, 2, '#'),                          -- everyone may publish anything
  (0, NULL, '$all', NULL, 1, '$SYS/#'),                     -- nobody subscribes to $SYS ...
  (0, NULL, '$all', NULL, 1, 'eq #'),                       -- ... or to the literal filter #
  (1, '127.0.0.1', NULL, NULL, 2, '$SYS/#'),                -- localhost may publish $SYS
  (1, '127.0.0.1', NULL, NULL, 2, '#'),
  (1, NULL, 'dashboard', NULL, 1, '$SYS/#'),                -- shadowed by the $all deny above (first match wins)
  (1, NULL, '$all', NULL, 3, '/smarthome/%c/temperature');  -- each client its own topic
