// A multipart/form-data body as a browser sends one (made by the platform's FormData and Request),
// for routes that take uploads: the fields, then the files.
export interface UploadFile {
  /** The form field (default `attachments`). */
  field?: string;
  filename: string;
  contentType: string;
  content: Buffer;
}

export async function multipart(
  fields: Record<string, string>,
  files: UploadFile[] = [],
): Promise<{ body: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  for (const f of files)
    form.append(f.field ?? 'attachments', new Blob([f.content], { type: f.contentType }), f.filename);
  const request = new Request('http://upload.invalid/', { method: 'POST', body: form });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    headers: { 'content-type': request.headers.get('content-type')! },
  };
}
