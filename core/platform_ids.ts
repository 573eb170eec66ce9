/** Identifiers the platform derives from time. */

/** `platform_YYYYMMDDTHHMMSSZ` for an epoch-ms time (Effect Clock), the platform run id form. */
export function platformRunIdAt(ms: number): string {
  return `platform_${new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`;
}
