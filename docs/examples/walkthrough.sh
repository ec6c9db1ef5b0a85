#!/usr/bin/env bash
# A walk through the API with curl: set-up, a credit line, a quote, an order that places the hold,
# funding, a repayment, early settlement of the rest (the hold fully released), the notices, and
# the ledger check. Start the service first (README: "A walk through the API"), then:
#   docs/examples/walkthrough.sh               # against http://127.0.0.1:8080 with admin key change-me
#   CREDITPHONE_URL=http://127.0.0.1:9000 ADMIN_KEY=other docs/examples/walkthrough.sh
# Ids and keys are carried from one answer to the next; it stops at the first unexpected answer.
# It can run again on the same database: set-up that exists already (409) is kept, and numbers
# that must be unique for ever (out_order_no, loan_no, idempotency keys) carry this run's tag.
set -euo pipefail
U="${CREDITPHONE_URL:-http://127.0.0.1:8080}"
ADMIN="${ADMIN_KEY:-change-me}"
RUN="$(date +%s)"
TODAY="$(date -u -d '+8 hours' +%F)"   # today in Asia/Shanghai, as the API counts dates

# call EXPECTED KEY METHOD PATH [IDEMPOTENCY-KEY] [BODY]: prints the answer; fails unless its status
# is one of EXPECTED (e.g. "201|409").
call() {
  local expected="$1" key="$2" method="$3" path="$4" idem="${5:-}" body="${6:-}" out status
  local args=(-sS -X "$method" -H "Authorization: Bearer $key" -w '\n%{http_code}')
  [ -n "$idem" ] && args+=(-H "Idempotency-Key: $idem")
  [ -n "$body" ] && args+=(-H "Content-Type: application/json" -d "$body")
  out="$(curl "${args[@]}" "$U$path")"
  status="${out##*$'\n'}"
  out="${out%$'\n'*}"
  echo ">> $method $path -> $status" >&2
  echo "$out" >&2
  if ! [[ "$status" =~ ^($expected)$ ]]; then
    echo "walkthrough: expected $expected from $method $path, got $status" >&2
    exit 1
  fi
  printf '%s' "$out"
}

# first STRING-PATTERN: the first JSON string field matching the pattern, e.g. first '"id":"ord_'.
first() { grep -o "$1[^\"]*\"" | head -n 1 | sed 's/.*:"\(.*\)"$/\1/'; }

# 1. Set-up (admin): a provider, a bank, a store, a product, and an API key for each caller.
call "201|409" "$ADMIN" POST /v1/admin/providers "" '{"id":"webank_wld","name":"微粒贷"}' >/dev/null
call "201|409" "$ADMIN" POST /v1/admin/banks "" \
  '{"id":"bank-a","name":"Bank A","priority":1,"apr_min":"0","apr_max":"0.24","exposure_limit":"5000000"}' >/dev/null
call "201|409" "$ADMIN" POST /v1/admin/stores "" '{"id":"sz-001","name":"深圳营业厅","region_code":"440305"}' >/dev/null
call "201|409" "$ADMIN" POST /v1/admin/products "" '{"id":"phone-12","name":"12期","pricing":"interest",
  "terms":[{"months":12,"rate":"0.18"}],"providers":["webank_wld"],"regions":["44"],"min_principal":"500","max_principal":"20000"}' >/dev/null
STORE="$(call 201 "$ADMIN" POST /v1/admin/api-keys "" '{"principal":{"kind":"store","id":"sz-001"}}' | first '"key":"')"
PROVIDER="$(call 201 "$ADMIN" POST /v1/admin/api-keys "" '{"principal":{"kind":"provider","id":"webank_wld"}}' | first '"key":"')"
BANK="$(call 201 "$ADMIN" POST /v1/admin/api-keys "" '{"principal":{"kind":"bank","id":"bank-a"}}' | first '"key":"')"

# 2. The provider registers the customer's credit line (201 new, 200 when it exists already).
CUSTOMER='{"id_number":"110101199003071233","phone":"13812345678"}'
LINE="$(call "200|201" "$PROVIDER" POST /v1/credit-lines "line-$RUN" \
  "{\"customer\":$CUSTOMER,\"limit\":\"10000\",\"expires_on\":\"2031-12-31\"}" | first '"id":"line_')"

# 3. The store quotes, then orders: the hold is placed on the line and a bank's exposure reserved.
call 200 "$STORE" POST /v1/quotes "" '{"product_id":"phone-12","term_months":12,"device_price":"3999","down_payment":"999"}' >/dev/null
ORDER="$(call 201 "$STORE" POST /v1/orders "ord-$RUN" "{\"out_order_no\":\"POS-$RUN\",\"product_id\":\"phone-12\",\"term_months\":12,
  \"customer\":$CUSTOMER,\"device\":{\"sku\":\"X1\",\"imei\":\"490154203237518\",\"price\":\"3999\"},\"down_payment\":\"999\"}" |
  first '"id":"ord_')"

# 4. The bank funds it: the installment plan opens, due dates counted from today.
PLAN="$(call 200 "$BANK" POST "/v1/orders/$ORDER/funding" "fund-$RUN" \
  "{\"decision\":\"approved\",\"loan_no\":\"L$RUN\",\"funded_on\":\"$TODAY\"}" | first '"id":"plan_')"

# 5. The first installment is paid (ahead of time): the hold is released by as much.
call 201 "$BANK" POST "/v1/plans/$PLAN/repayments" "rep-$RUN-1" \
  "{\"amount\":\"275.04\",\"paid_on\":\"$TODAY\",\"reference\":\"R$RUN-1\"}" >/dev/null
call 200 "$PROVIDER" GET "/v1/credit-lines/$LINE" >/dev/null

# 6. The customer settles early: paying exactly the payoff settles the plan and releases the hold.
PAYOFF="$(call 200 "$BANK" GET "/v1/plans/$PLAN/payoff?as_of=$TODAY" | first '"amount":"')"
call 201 "$BANK" POST "/v1/plans/$PLAN/repayments" "rep-$RUN-2" \
  "{\"amount\":\"$PAYOFF\",\"paid_on\":\"$TODAY\",\"reference\":\"R$RUN-2\"}" | grep '"plan_status":"settled"' >/dev/null
call 200 "$STORE" GET "/v1/orders/$ORDER" | grep '"status":"settled"' >/dev/null

# 7. What the provider was told, and the ledger check.
call 200 "$PROVIDER" GET "/v1/notices?limit=10" >/dev/null
call 200 "$ADMIN" GET /v1/admin/ledger/verify | grep '"ok":true' >/dev/null
echo "walkthrough: order $ORDER settled, plan $PLAN, ledger ok" >&2
