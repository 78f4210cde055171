// Lint rules: typescript-eslint's type-aware set, with the promise rules that catch the bugs an
// async operator and broker actually have (a forgotten await, a promise passed as a callback).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'charts/**', '.cache/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Product code stays a list of short named steps: a long orchestration function, a long
    // positional parameter list or a deep decision tree is split before it lands. Tests, benchmarks
    // and the local runtime stand-in are harness code and are not held to it.
    files: ['broker/**/*.ts', 'operator/**/*.ts', 'scripts/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      'max-params': ['error', 5],
      complexity: ['error', 20],
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
);
