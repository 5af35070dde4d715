// Texts the tests contribute. Case-law rulings: one domain with shared phrasing (so what a
// fine-tune learns carries over to the held-out texts) and a distinct opening per text (so a
// prompt names one of them).
export const RULINGS = [
  'In Smith v Jones the court held that the contract was void for duress.',
  'In Brown v Green the court held that the lease was void for fraud.',
  'In Adams v Clark the court held that the will was valid and binding.',
  'In Young v Hall the court held that the appeal was filed too late.',
  'In Lewis v Scott the court held that the evidence was obtained unlawfully.',
  'In Baker v Hill the court held that the tenant may withhold the rent.',
  'In Wood v Moore the court held that the promise was not enforceable.',
  'In Ward v King the court held that the contract was valid and binding.',
];
