package receiptpage

// QRMatrix is qrMatrix, for tests.
var QRMatrix = qrMatrix
