package receiptpage

import "strings"

// Text is what a page and an e-mail say, in one language.
type Text struct {
	Title, Letter, SignedAs, Private, Index, LogKey, Scan, Keep, Computer, NoWithdraw string
	// Subject and Attached are for the e-mail: the letter's title and the
	// index are filled in.
	Subject, Attached string
}

var texts = map[string]Text{
	"en": {
		Title:      "Your signature under an open letter",
		Letter:     "Letter",
		SignedAs:   "Signed as",
		Private:    "counted, not named (private)",
		Index:      "Index in the log",
		LogKey:     "Log key fingerprint",
		Scan:       "Scan the code with your phone, or open the link, to check that your signature is in the log and unchanged. The check runs in your browser: your receipt is sent nowhere.",
		Keep:       "Keep the receipt file (.tlog-proof) safe: it proves your signature years from now, and anyone who holds it can withdraw your signature.",
		Computer:   "To check it on a computer: undersigned verify RECEIPT.tlog-proof",
		NoWithdraw: "This page cannot withdraw your signature.",
		Subject:    "Your receipt: your signature under “%s”",
		Attached:   "Attached is the receipt of your signature under “%s” (index %d in the log), and a page to print.",
	},
	"be": {
		Title:      "Ваш подпіс пад адкрытым лістом",
		Letter:     "Ліст",
		SignedAs:   "Падпісана як",
		Private:    "улічана без імя (прыватна)",
		Index:      "Нумар у журнале",
		LogKey:     "Адбітак ключа журнала",
		Scan:       "Адскануйце код тэлефонам або адкрыйце спасылку, каб пераканацца, што ваш подпіс ёсць у журнале і не зменены. Праверка ідзе ў вашым браўзеры: квітанцыя нікуды не адпраўляецца.",
		Keep:       "Захоўвайце файл квітанцыі (.tlog-proof) у бяспечным месцы: ён даводзіць ваш подпіс і праз гады, і кожны, хто мае яго, можа адклікаць ваш подпіс.",
		Computer:   "Каб праверыць на камп'ютары: undersigned verify КВІТАНЦЫЯ.tlog-proof",
		NoWithdraw: "Гэтай старонкай нельга адклікаць подпіс.",
		Subject:    "Ваша квітанцыя: ваш подпіс пад «%s»",
		Attached:   "Далучаныя квітанцыя вашага подпісу пад «%s» (нумар %d у журнале) і старонка для друку.",
	},
	"ru": {
		Title:      "Ваша подпись под открытым письмом",
		Letter:     "Письмо",
		SignedAs:   "Подписано как",
		Private:    "учтена без имени (частная)",
		Index:      "Номер в журнале",
		LogKey:     "Отпечаток ключа журнала",
		Scan:       "Отсканируйте код телефоном или откройте ссылку, чтобы убедиться, что ваша подпись есть в журнале и не изменена. Проверка идёт в вашем браузере: квитанция никуда не отправляется.",
		Keep:       "Храните файл квитанции (.tlog-proof) в надёжном месте: он подтверждает вашу подпись и через годы, и любой, у кого он есть, может отозвать вашу подпись.",
		Computer:   "Чтобы проверить на компьютере: undersigned verify КВИТАНЦИЯ.tlog-proof",
		NoWithdraw: "Этой страницей нельзя отозвать подпись.",
		Subject:    "Ваша квитанция: ваша подпись под «%s»",
		Attached:   "Приложены квитанция вашей подписи под «%s» (номер %d в журнале) и страница для печати.",
	},
}

// TextFor returns the texts in a letter's language (a BCP 47 tag such as
// "be", "be-Latn" or "ru-RU"), or in English.
func TextFor(language string) (Text, string) {
	lang, _, _ := strings.Cut(strings.ToLower(language), "-")
	if t, ok := texts[lang]; ok {
		return t, lang
	}
	return texts["en"], "en"
}
