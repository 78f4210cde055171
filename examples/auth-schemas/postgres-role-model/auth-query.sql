SELECT password_hash, salt, is_superuser FROM users WHERE username = ${username} LIMIT 1
