"""OCR engines: RapidOCR (ONNX models shipped in the package, runs in the sandbox) and an
AWS Textract adapter (boto3)."""
