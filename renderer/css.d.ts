// Lets TypeScript accept side-effect CSS imports (vite bundles them); declares nothing else.
// Not a place for other ambient types.
declare module '*.css';
