-- Seed 003: EMQX 4's MySQL tables (apps/emqx_auth_mysql/mqtt.sql), unchanged. The Enclave `mysql`
-- source reads them with its DEFAULT queries:
--   authQuery: SELECT * FROM mqtt_user WHERE username = ${username} LIMIT 1
--   aclQuery:  SELECT * FROM mqtt_acl WHERE ipaddr = ${peerhost} OR username = ${username}
--              OR username = '$all' OR clientid = ${clientid} ORDER BY id
-- Set passwordHash to match how `password` was written: EMQX 4's default was sha256 without salt
-- ({algorithm: sha256, saltPosition: disable}); `salt,sha256` = prefix, `sha256,salt` = suffix.
CREATE TABLE mqtt_user (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  username varchar(100) DEFAULT NULL,
  password varchar(100) DEFAULT NULL,
  salt varchar(35) DEFAULT NULL,
  is_superuser tinyint(1) DEFAULT 0,
  created datetime DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mqtt_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE mqtt_acl (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  allow int(1) DEFAULT 1 COMMENT '0: deny, 1: allow',
  ipaddr varchar(60) DEFAULT NULL COMMENT 'IpAddress',
  username varchar(100) DEFAULT NULL COMMENT 'Username; $all = every client',
  clientid varchar(100) DEFAULT NULL COMMENT 'ClientId',
  access int(2) NOT NULL COMMENT '1: subscribe, 2: publish, 3: pubsub',
  topic varchar(100) NOT NULL DEFAULT '' COMMENT 'Topic Filter; %u %c substituted; "eq " = literal',
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
