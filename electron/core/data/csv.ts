// RFC 4180 CSV: comma-separated fields, double-quoted fields may hold commas, newlines and "" for a quote. Each
// record remembers the line it starts on, since a quoted newline makes records and lines differ. Lenient where
// Python's csv module is (a quote inside an unquoted field, text after a closing quote are kept as text).

export interface CsvRecord {
  /** 1-based lines of the record's first and last character. */
  line: number;
  lastLine: number;
  fields: string[];
}

export interface CsvParse {
  records: CsvRecord[];
  /** Line where a quoted field opens that never closes (everything after it is that field), or null. */
  unclosedQuoteLine: number | null;
}

export function parseCsv(text: string): CsvParse {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let inQuotes = false;
  let quoteLine = 0;
  let line = 1;
  let recordLine = 1;
  let recordHasContent = false;
  const endRecord = (lastLine: number) => {
    fields.push(field);
    records.push({ line: recordLine, lastLine, fields });
    fields = [];
    field = '';
    recordHasContent = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') (field += '"'), i++;
        else inQuotes = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"' && field === '') {
      inQuotes = true;
      quoteLine = line;
      recordHasContent = true;
    } else if (c === ',') {
      fields.push(field);
      field = '';
      recordHasContent = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      if (recordHasContent || field !== '') endRecord(line);
      else fields = []; // a blank line is no record
      line++;
      recordLine = line;
    } else {
      field += c;
      recordHasContent = true;
    }
  }
  if (inQuotes) return { records, unclosedQuoteLine: quoteLine };
  if (recordHasContent || field !== '') endRecord(line);
  return { records, unclosedQuoteLine: null };
}
