// One path field with its action button (Inspect, Preview, Export) and the error shown in place under it.
// Used by the Model, Data and Export steps; holds no state of its own.

export interface PathFormProps {
  label: string;
  value: string;
  onChange(value: string): void;
  onSubmit(): void;
  busy: boolean;
  /** Extra reason the action is unavailable (the empty path is already handled). */
  disabled?: boolean;
  actionText: string;
  busyText: string;
  error: string | null | undefined;
}

export function PathForm(p: PathFormProps) {
  return (
    <>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          p.onSubmit();
        }}
      >
        <label className="grow">
          <span className="label">{p.label}</span>
          <input type="text" value={p.value} spellCheck={false} onChange={(e) => p.onChange(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={p.busy || p.disabled || p.value.trim() === ''}>
          {p.busy ? p.busyText : p.actionText}
        </button>
      </form>
      {p.error && (
        <p className="error" role="alert">
          {p.error}
        </p>
      )}
    </>
  );
}
