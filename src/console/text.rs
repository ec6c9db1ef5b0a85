//! What the console says, in zh-CN (the default) or English, and how it writes money and time:
//! `¥` with thousands separators and two decimals, instants in Asia/Shanghai.

use crate::domain::SHANGHAI;
use crate::domain::money::Amount;
use chrono::{DateTime, Utc};

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The `lang` cookie's choice when there is one, else the first language `Accept-Language`
    /// names being English; zh-CN otherwise.
    pub fn pick(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        match cookie {
            Some("en") => return Lang::En,
            Some("zh") => return Lang::Zh,
            _ => {}
        }
        let first = accept_language.and_then(|a| a.split(',').next()).map(|t| t.trim().to_ascii_lowercase());
        if first.is_some_and(|t| t == "en" || t.starts_with("en-") || t.starts_with("en;")) { Lang::En } else { Lang::Zh }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> (&'static str, &'static str) {
        match self {
            Lang::Zh => ("en", "English"),
            Lang::En => ("zh", "中文"),
        }
    }

    /// The phrase `key` in this language (the key itself when it has no translation: a bug that
    /// shows rather than fails).
    pub fn t(self, key: &'static str) -> &'static str {
        let found = PHRASES.iter().find(|(k, _, _)| *k == key);
        match (found, self) {
            (Some((_, zh, _)), Lang::Zh) => zh,
            (Some((_, _, en)), Lang::En) => en,
            (None, _) => key,
        }
    }
}

/// Every phrase: its key, zh-CN, English.
const PHRASES: &[(&str, &str, &str)] = &[
    ("title", "信用购机运营台", "Credit phone operations"),
    ("sign_in", "登录", "Sign in"),
    ("sign_out", "退出", "Sign out"),
    ("admin_key", "管理员 API 密钥", "Admin API key"),
    ("bad_key", "密钥无效或不是管理员密钥", "Not a valid admin key"),
    ("overview", "总览", "Overview"),
    ("orders", "订单查询", "Order lookup"),
    ("notices", "通知", "Notices"),
    ("eod", "日终", "End of day"),
    ("aging", "账龄", "Aging"),
    ("reference", "银行与额度方", "Banks and providers"),
    ("banks", "资金方", "Funding banks"),
    ("providers", "额度方", "Credit providers"),
    ("bank", "资金方", "Bank"),
    ("provider", "额度方", "Provider"),
    ("exposure", "敞口 已用/上限", "Exposure used / limit"),
    ("outstanding", "在贷本金", "Outstanding principal"),
    ("active", "正常", "Active"),
    ("defaulted", "违约", "Defaulted"),
    ("written_off", "核销", "Written off"),
    ("lines", "额度数", "Lines"),
    ("holds_active", "有效冻结", "Active holds"),
    ("held", "冻结", "Held"),
    ("held_pending", "待确认冻结", "Held pending"),
    ("drawn", "已代偿", "Drawn"),
    ("total", "合计", "Total"),
    ("today_eod", "今日与昨日日终", "Today's and yesterday's end of day"),
    ("not_run", "未运行", "Not run"),
    ("search", "搜索", "Search"),
    ("search_hint", "商户订单号、借据号或任一编号", "out_order_no, loan_no or any id"),
    ("no_results", "没有找到订单", "No order found"),
    ("status", "状态", "Status"),
    ("principal", "本金", "Principal"),
    ("created_at", "创建时间", "Created"),
    ("hold", "冻结", "Hold"),
    ("plan", "分期计划", "Plan"),
    ("installments", "期次", "Installments"),
    ("due_on", "到期日", "Due"),
    ("unpaid", "未还", "Unpaid"),
    ("amount", "金额", "Amount"),
    ("remaining", "剩余", "Remaining"),
    ("released", "已解冻", "Released"),
    ("converted", "已代偿", "Converted"),
    ("dead", "死信", "Dead"),
    ("pending", "待投递", "Pending"),
    ("delivered", "已投递", "Delivered"),
    ("pull_only", "仅拉取", "Pull only"),
    ("state", "投递状态", "State"),
    ("recipient", "接收方", "Recipient"),
    ("type", "类型", "Type"),
    ("attempts", "尝试次数", "Attempts"),
    ("last_error", "最近错误", "Last error"),
    ("redeliver", "重新投递", "Redeliver"),
    ("redeliver_all", "全部死信重新投递", "Redeliver all dead"),
    ("redelivered", "已重新排队", "Queued again"),
    ("filter", "筛选", "Filter"),
    ("next_page", "下一页", "Next page"),
    ("business_date", "营业日", "Business date"),
    ("trigger", "触发方式", "Trigger"),
    ("started_at", "开始", "Started"),
    ("duration", "耗时(毫秒)", "Duration (ms)"),
    ("summary", "汇总", "Summary"),
    ("run_eod", "运行日终", "Run end of day"),
    ("confirm_eod", "确认关闭该营业日？关闭后不可撤销。", "Close this business date? This cannot be undone."),
    ("confirm", "确认运行", "Confirm and run"),
    ("cancel", "取消", "Cancel"),
    ("eod_done", "日终已完成", "End of day done"),
    ("as_of", "截至", "As of"),
    ("all_banks", "全部资金方", "All banks"),
    ("bucket", "逾期天数", "Days past due"),
    ("plans", "计划数", "Plans"),
    ("unpaid_due", "逾期未还", "Unpaid due"),
    ("name", "名称", "Name"),
    ("priority", "优先级", "Priority"),
    ("webhook", "回调地址", "Webhook URL"),
    ("none", "无", "none"),
    ("refused", "操作被拒绝", "Refused"),
    ("csrf", "表单已失效，请重试", "The form expired; try again"),
    ("repayments", "还款", "Repayments"),
    ("recoveries", "核销后回收", "Recoveries"),
    ("write_off", "核销", "Write-off"),
    ("paid_on", "还款日", "Paid on"),
    ("ref_no", "流水号", "Reference"),
    ("interest", "利息", "Interest"),
    ("fee", "费用", "Fee"),
    ("penalty", "罚息", "Penalty"),
    ("hold_released", "解冻", "Hold released"),
    ("journal", "会计分录", "Journal entries"),
    ("account", "科目", "Account"),
    ("debit", "借", "Debit"),
    ("credit", "贷", "Credit"),
    ("balanced", "借贷平衡", "Balanced"),
    ("unbalanced", "借贷不平", "NOT balanced"),
    ("attempt_history", "投递记录", "Delivery attempts"),
    ("attempted_at", "投递时间", "Sent at"),
    ("result", "结果", "Result"),
    ("next_attempt", "下次投递", "Next attempt"),
    ("last_attempt", "最近投递", "Last attempt"),
    ("no_attempts", "暂无投递记录", "No attempts recorded"),
    ("no_notice", "没有这条通知", "No such notice"),
    ("reason", "原因", "Reason"),
    ("voided", "已撤销", "Voided"),
    ("void_reason", "撤销原因", "Void reason"),
    ("decline_reason", "拒绝冻结原因", "Decline reason"),
    ("confirm_deadline", "确认截止", "Confirm by"),
    ("confirmed_at", "确认时间", "Confirmed"),
    ("provider_order_no", "额度方订单号", "Provider order no."),
    ("returns", "退货", "Returns"),
    ("return_requested", "待资金方审核", "Requested"),
    ("return_completed", "已完成", "Completed"),
    ("return_rejected", "已拒绝", "Rejected"),
    ("no_reason", "无理由退货", "No reason"),
    ("performance_fault", "性能故障", "Performance fault"),
    ("other_reason", "其他", "Other"),
    ("returned_on", "退货日", "Returned on"),
    ("completed_on", "完成日", "Completed on"),
    ("rejection_reason", "拒绝原因", "Rejection reason"),
    ("note", "备注", "Note"),
    ("principal_to_bank", "归还资金方本金", "Principal to bank"),
    ("repayments_to_refund", "应退还款", "Repayments to refund"),
    ("interest_waived", "免除利息", "Interest waived"),
    ("fee_waived", "免除费用", "Fee waived"),
    ("penalty_waived", "免除罚息", "Penalty waived"),
    ("down_payment_to_refund", "应退首付", "Down payment to refund"),
    ("hold_to_void", "撤销冻结", "Hold to void"),
    ("journal_unbalanced", "会计分录借贷不平，账务有误：", "Journal entries do NOT balance; the books are wrong:"),
    ("difference", "差额", "Difference"),
    ("seller", "销售方", "Sold by"),
    ("product", "产品 · 期数", "Product · months"),
    ("down_payment", "首付", "Down payment"),
    ("funding_deadline", "放款截止", "Fund by"),
    ("funded_on", "放款日", "Funded on"),
    ("compensated", "冻结代偿", "Compensated"),
    ("accelerated", "提前到期", "Accelerated"),
    ("hold_confirmation", "冻结确认", "Hold confirmation"),
    ("confirmation_timeout", "确认时限(分钟)", "Confirmation timeout (minutes)"),
];

/// `¥1,234,567.89`.
pub fn yuan(a: Amount) -> String {
    let fen = a.fen();
    let (yuan, cents) = (fen / 100, fen % 100);
    let digits = yuan.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("¥{grouped}.{cents:02}")
}

/// An instant as Asia/Shanghai wall time, to the minute.
pub fn shanghai(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI).format("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_a_sign_separators_and_two_decimals() {
        assert_eq!(yuan(Amount::from_fen(0)), "¥0.00");
        assert_eq!(yuan(Amount::from_fen(5)), "¥0.05");
        assert_eq!(yuan(Amount::from_fen(99_999)), "¥999.99");
        assert_eq!(yuan(Amount::from_fen(100_000)), "¥1,000.00");
        assert_eq!(yuan(Amount::from_fen(12_345_678_901)), "¥123,456,789.01");
    }

    #[test]
    fn times_are_shanghais_and_languages_follow_the_cookie_then_the_browser() {
        let t = DateTime::parse_from_rfc3339("2027-01-31T16:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(shanghai(t), "2027-02-01 00:30");
        assert_eq!(Lang::pick(None, None), Lang::Zh);
        assert_eq!(Lang::pick(None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::pick(None, Some("zh-CN,en;q=0.5")), Lang::Zh);
        assert_eq!(Lang::pick(Some("zh"), Some("en-US")), Lang::Zh);
        assert_eq!(Lang::pick(Some("en"), None), Lang::En);
        assert_eq!(Lang::En.t("overview"), "Overview");
        assert!(PHRASES.iter().all(|(_, zh, en)| !zh.is_empty() && !en.is_empty()));
    }

    #[test]
    fn each_phrase_key_is_defined_once() {
        // A second definition is never found: the page would say the first one's words.
        let mut keys: Vec<&str> = PHRASES.iter().map(|p| p.0).collect();
        keys.sort_unstable();
        let twice: Vec<&&str> = keys.windows(2).filter(|w| w[0] == w[1]).map(|w| &w[0]).collect();
        assert!(twice.is_empty(), "defined twice: {twice:?}");
    }
}
