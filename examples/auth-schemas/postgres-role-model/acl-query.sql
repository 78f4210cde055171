WITH perms AS (
  SELECT DISTINCT p.id, p.topic, p.publish_allowed, p.subscribe_allowed, p.retained_msgs_allowed,
         p.shared_sub_allowed, p.shared_group,
         concat_ws(',', CASE WHEN p.qos_0_allowed THEN '0' END,
                        CASE WHEN p.qos_1_allowed THEN '1' END,
                        CASE WHEN p.qos_2_allowed THEN '2' END) AS qos
    FROM users u
    JOIN user_roles ur ON ur.user_id = u.id
    JOIN role_permissions rp ON rp.role_id = ur.role_id
    JOIN permissions p ON p.id = rp.permission_id
   WHERE u.username = ${username}
)
SELECT permission, action, topic, qos, retain FROM (
  SELECT 1 AS ord, id, 'allow' AS permission, 'subscribe' AS action,
         '$share/' || shared_group || '/' || topic AS topic, qos, NULL::boolean AS retain
    FROM perms WHERE subscribe_allowed AND shared_sub_allowed AND shared_group IS NOT NULL
  UNION ALL
  SELECT 2, id, 'deny', 'subscribe', '$share/+/' || topic, NULL, NULL
    FROM perms WHERE subscribe_allowed AND NOT (shared_sub_allowed AND shared_group IS NULL)
  UNION ALL
  SELECT 3, id, 'allow', 'subscribe', topic, qos, NULL
    FROM perms WHERE subscribe_allowed
  UNION ALL
  SELECT 4, id, 'allow', 'publish', topic, qos, CASE WHEN retained_msgs_allowed THEN NULL ELSE false END
    FROM perms WHERE publish_allowed
) rules
ORDER BY ord, id
