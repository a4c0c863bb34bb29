#!/usr/bin/env node
// Entry point of the `confidant` command: runs the compiled CLI (npm run build first).
import { main } from '../build/electron/cli/main.js';

main(process.argv.slice(2)).then((code) => process.exit(code));
